/* The fake backend of the core's libFuzzer harnesses: see fake_backend.h. */
#define _GNU_SOURCE
#include "fake_backend.h"

#include <errno.h>
#include <string.h>

fake_state fake;

static int64_t last_stats[S_LEN];

void fake_reset(void)
{
    memset(&fake, 0, sizeof fake);
    memset(last_stats, 0, sizeof last_stats);
    for (int i = 0; i < FAKE_SLOTS; i++)
        fake.open_fd[i] = -1;
    fake.next_fd = FAKE_FD_BASE;
}

int fake_slot(const core *k, const conn *c)
{
    return (int)(c - k->conns);
}

static int fk_init(core *k)
{
    k->io_state = &fake;
    return 0;
}

static void fk_fini(core *k)
{
    k->io_state = NULL;
}

static int fk_socket(core *k, conn *c)
{
    fake.socket_gen[fake_slot(k, c)] = c->gen + 1;
    return 0;
}

static int fk_sets_linger(core *k)
{
    (void)k;
    return 1;
}

static int fk_open(core *k, conn *c)
{
    int i = fake_slot(k, c);
    require(c->fd >= FAKE_FD_BASE && fake.open_fd[i] == c->fd);
    fake.connect_gen[i] = c->gen + 1;
    return 0;
}

static void fk_close(core *k, conn *c)
{
    int i = fake_slot(k, c);
    require(c->fd >= FAKE_FD_BASE && fake.open_fd[i] == c->fd); /* open, and not closed before */
    fake.open_fd[i] = -1;
    fake.socket_gen[i] = fake.connect_gen[i] = fake.send_gen[i] = 0;
}

static void fk_flush(core *k)
{
    (void)k;
}

static int fk_poll(core *k, int64_t until)
{
    (void)k;
    (void)until;
    return 0;
}

const backend fake_backend = {
    .name = "fake", .init = fk_init, .fini = fk_fini, .open = fk_open, .socket = fk_socket,
    .sets_linger = fk_sets_linger, .send = fake_send, .close = fk_close, .flush = fk_flush, .poll = fk_poll,
};

void fake_socket_op(core *k, conn *c, int refused)
{
    int i = fake_slot(k, c);
    if (!(c->flags & F_SOCKET_PENDING) || fake.socket_gen[i] != c->gen + 1)
        return;
    fake.socket_gen[i] = 0;
    if (refused) {
        core_socket_made(k, c, -EMFILE);
    } else {
        fake.open_fd[i] = fake.next_fd++;
        core_socket_made(k, c, fake.open_fd[i]);
    }
}

void fake_connect_op(core *k, conn *c, int refused)
{
    int i = fake_slot(k, c);
    if (c->state != C_CONNECTING || c->fd < 0 || fake.connect_gen[i] != c->gen + 1)
        return;
    fake.connect_gen[i] = 0;
    if (refused) {
        core_connect_failed(k, c, ECONNREFUSED);
        return;
    }
    uint32_t gen = c->gen;
    if (core_connected(k, c, now_ns()) && c->gen == gen)
        fake_send(k, c);
}

void fake_tick_op(core *k, int arg)
{
    static const int64_t steps[4] = {0, 2000000LL, 150000000LL, TIMEOUT_NS + 100000000LL};
    core_tick(k, now_ns() + steps[arg % 4]);
}

void fake_due_op(core *k, int arg)
{
    if (!k->open_loop || k->stopping)
        return;
    int64_t times[4];
    int n = 1 + arg % 4;
    for (int t = 0; t < n; t++)
        times[t] = now_ns();
    require(core_add_due(k, times, (size_t)n) == 0);
    if (arg >= 16)
        k->schedule_done = 1;
}

int64_t fake_unsettled(const core *k)
{
    int64_t errors = 0;
    for (int e = 0; e < N_ERRORS; e++)
        errors += k->stats[S_ERRORS + e];
    int64_t results = k->stats[S_REQUESTS] + errors - k->stats[S_CLOSE_ERRORS];
    return k->stats[S_TAKEN] - k->stats[S_WITHDRAWN] - results;
}

/* Whether any of the n counters went down. Not instrumented: it runs after every step over
 * the whole stats array (fixed bounds), and instrumented it halved the harness's speed. */
__attribute__((no_sanitize("address", "undefined"))) static int decreased(const int64_t *now, const int64_t *before,
                                                                         int n)
{
    int down = 0;
    for (int i = 0; i < n; i++)
        down |= now[i] < before[i];
    return down;
}

int fake_stats_decreased(const core *k)
{
    int down = decreased(k->stats, last_stats, S_LEN);
    memcpy(last_stats, k->stats, sizeof last_stats);
    return down;
}

void fake_check_targets(const core *k)
{
    if (!k->n_targets) return;
    int64_t answers_by_target = 0;
    for (int g = 0; g < k->n_groups; g++)
        answers_by_target += k->gstats[(size_t)g * G_LEN + G_REQUESTS];
    require(answers_by_target == k->stats[S_REQUESTS]);
    for (int e = 0; e < N_ERRORS; e++) {
        int64_t by_target = 0;
        for (int g = 0; g < k->n_groups; g++)
            by_target += k->gstats[(size_t)g * G_LEN + G_ERRORS + e];
        require(by_target <= k->stats[S_ERRORS + e]);
    }
}

int byte(input *in)
{
    return in->at < in->n ? in->d[in->at++] : 0;
}
