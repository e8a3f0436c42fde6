/* libFuzzer harness for HTTP/2 in the core (src/twload/engine/core/h2.c): nghttp2's client session
 * fed fuzzed server bytes through the core's own callbacks (core_received, core_peer_closed,
 * core_read_failed, the sweep's timeouts), as fuzz/fuzz_core_conn.c does for HTTP/1.1.
 *
 * Build: clang -fsanitize=fuzzer,address,undefined with core.c, h2.c and http1_parse.c, linked with
 * libnghttp2 (see `make fuzz-h2`). The backend is a fake defined here: no socket, no I/O; its send()
 * is loop_epoll.c's h2_write with the socket replaced by a sink that takes all, half or nothing of
 * what h2_output gives (a full socket buffer), so the session's pending bytes are exercised too.
 * The harness plays the kernel and the server: connects done or refused, writes blocked and
 * unblocked, the server's bytes (raw, cut where the input says, or a frame built from the input:
 * type, flags, one of the client's stream ids, a payload), EOF, a reset, time passing (each
 * stream's timeout), stop, open-loop send times.
 *
 * Input: 3 bytes of configuration (close mode, slots 1-2, streams 1-4, requests per connection,
 * budget, a body, open loop), then operations, each one byte (what, and an argument: the slot, a flag) followed by its
 * data; fuzz/corpus_h2 holds one seed per situation.
 *
 * Checked after every step: the request ledger (requests taken == results + withdrawn + those still
 * owed: streams in flight, slots carrying their request to a connect, requests refused and waiting
 * for a stream), and after the abandon that nothing is owed; n_fd, n_connecting and in_flight never
 * negative, n_fd equal to the fake's open descriptors, sessions never more than open connections (none
 * after the abandon); the stats never decrease.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "h2.h"

#define MAX_CAPACITY 2
#define TIMEOUT_NS 1000000000LL
#define FAKE_FD_BASE 1000000000 /* far above any real descriptor: never one of ours */

#define require(ok)                                                                               \
    do {                                                                                          \
        if (!(ok)) {                                                                              \
            fprintf(stderr, "fuzz_h2_session.c:%d: invariant broken: %s\n", __LINE__, #ok);       \
            abort();                                                                              \
        }                                                                                         \
    } while (0)

/* ---- the fake backend ---- */

typedef struct fake {
    int open_fd[MAX_CAPACITY];
    int next_fd;
    uint32_t socket_gen[MAX_CAPACITY];  /* the conn's gen + 1 a socket / connect / write waits for; 0: none */
    uint32_t connect_gen[MAX_CAPACITY];
    uint32_t send_gen[MAX_CAPACITY];
    int blocked;   /* the socket takes nothing (0), or half (1) of each write; -1: all */
} fake;

static fake F;

static int slot(const core *k, const conn *c) { return (int)(c - k->conns); }

static int fk_init(core *k)
{
    k->io_state = &F;
    return 0;
}

static void fk_fini(core *k) { k->io_state = NULL; }

static int fk_socket(core *k, conn *c)
{
    F.socket_gen[slot(k, c)] = c->gen + 1;
    return 0;
}

static int fk_sets_linger(core *k)
{
    (void)k;
    return 1;
}

static int fk_open(core *k, conn *c)
{
    int i = slot(k, c);
    require(c->fd >= FAKE_FD_BASE && F.open_fd[i] == c->fd);
    F.connect_gen[i] = c->gen + 1;
    return 0;
}

/* loop_epoll.c's h2_write, writing into a sink */
static void fk_send(core *k, conn *c)
{
    int i = slot(k, c);
    uint32_t gen = c->gen;
    for (int rounds = 0; rounds < 64; rounds++) {
        size_t len = 0;
        const uint8_t *out = h2_output(k, c, &len);
        if (c->gen != gen)
            return;
        if (!out || len == 0) {
            c->state = C_READING;
            F.send_gen[i] = 0;
            return;
        }
        size_t n = F.blocked < 0 ? len : F.blocked == 1 ? len / 2 : 0;
        h2_wrote(k, c, n);
        if (c->gen != gen)
            return;
        if (n < len) {
            c->state = C_SENDING;
            F.send_gen[i] = c->gen + 1;
            return;
        }
    }
    F.send_gen[i] = c->gen + 1; /* more than 64 writes' worth: the rest at the next write operation */
}

static void fk_close(core *k, conn *c)
{
    int i = slot(k, c);
    require(c->fd >= FAKE_FD_BASE && F.open_fd[i] == c->fd);
    F.open_fd[i] = -1;
    F.socket_gen[i] = F.connect_gen[i] = F.send_gen[i] = 0;
}

static void fk_flush(core *k) { (void)k; }

static int fk_poll(core *k, int64_t until)
{
    (void)k;
    (void)until;
    return 0;
}

static const backend fake_backend = {
    .name = "fake", .init = fk_init, .fini = fk_fini, .open = fk_open, .socket = fk_socket,
    .sets_linger = fk_sets_linger, .send = fk_send, .close = fk_close, .flush = fk_flush, .poll = fk_poll,
};

/* ---- invariants ---- */

static int64_t last_stats[S_LEN];

static int64_t unsettled(const core *k)
{
    int64_t errors = 0;
    for (int e = 0; e < N_ERRORS; e++)
        errors += k->stats[S_ERRORS + e];
    int64_t results = k->stats[S_REQUESTS] + errors - k->stats[S_CLOSE_ERRORS];
    return k->stats[S_TAKEN] - k->stats[S_WITHDRAWN] - results;
}

static int64_t owed(const core *k)
{
    int64_t n = k->in_flight + h2_owed(k);
    for (int i = 0; i < k->capacity; i++)
        n += (k->conns[i].flags & F_HAS_REQUEST) != 0;
    if (k->open_loop)
        n += (int64_t)(k->due_seen - k->due_head); /* due, taken, waiting for a stream */
    return n;
}

__attribute__((no_sanitize("address", "undefined"))) static int decreased(const int64_t *now, const int64_t *before,
                                                                         int n)
{
    int down = 0;
    for (int i = 0; i < n; i++)
        down |= now[i] < before[i];
    return down;
}

static void check(const core *k, int finished)
{
    int fds = 0, connecting = 0;
    for (int i = 0; i < k->capacity; i++) {
        const conn *c = &k->conns[i];
        fds += c->fd >= 0 || (c->flags & F_SOCKET_PENDING);
        connecting += c->state == C_CONNECTING;
        require(c->fd == F.open_fd[i]);
        require(!(c->flags & F_IN_FLIGHT)); /* HTTP/2 counts its streams in k->in_flight alone */
    }
    require(k->in_flight >= 0);
    require(k->n_fd >= 0 && k->n_fd == fds);
    require(k->n_connecting >= 0 && k->n_connecting == connecting);
    require(unsettled(k) == owed(k)); /* the ledger */
    require(h2_sessions(k) >= 0 && h2_sessions(k) <= fds); /* a session only on an open connection */
    if (finished)
        require(owed(k) == 0 && k->n_fd == 0 && k->in_flight == 0 && h2_sessions(k) == 0);
    int64_t answers = 0;
    for (int s = 0; s < N_STATUS; s++)
        answers += k->stats[S_STATUS + s];
    require(answers == k->stats[S_REQUESTS]);
    require(!decreased(k->stats, last_stats, S_LEN));
    memcpy(last_stats, k->stats, sizeof last_stats);
    require(k->peer_len >= -1 && k->peer_len <= (int)sizeof k->peer_bytes);
}

/* ---- the input ---- */

typedef struct input {
    const uint8_t *d;
    size_t n, at;
} input;

static int byte(input *in) { return in->at < in->n ? in->d[in->at++] : 0; }

enum { OP_DATA, OP_FRAME, OP_EOF, OP_RESET, OP_SOCKET, OP_CONNECT, OP_WRITE, OP_BLOCK, OP_TICK, OP_STOP,
       OP_DUE, OP_ABANDON, N_OPS };

static int connected(const conn *c)
{
    return c->fd >= 0 && (c->state == C_SENDING || c->state == C_READING || c->state == C_IDLE);
}

/* the server's bytes to c, handed over as readable() does; fin: its FIN came with them */
static void server_bytes(core *k, conn *c, const uint8_t *bytes, size_t len, int fin)
{
    char *piece = malloc(len ? len : 1); /* exactly its size: ASan sees any read beyond it */
    require(piece != NULL);
    memcpy(piece, bytes, len);
    uint32_t gen = c->gen;
    if (fin)
        c->flags |= F_PEER_CLOSED;
    if (!core_received(k, c, piece, len) && fin && c->gen == gen)
        core_peer_closed(k, c);
    free(piece);
}

static char *copy(const char *s, size_t len)
{
    char *p = malloc(len);
    require(p != NULL);
    memcpy(p, s, len);
    return p;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    input in = {data, size, 0};
    int c0 = byte(&in), c1 = byte(&in), c2 = byte(&in);
    core *k = calloc(1, sizeof *k);
    require(k != NULL);
    memset(&F, 0, sizeof F);
    memset(last_stats, 0, sizeof last_stats);
    for (int i = 0; i < MAX_CAPACITY; i++)
        F.open_fd[i] = -1;
    F.next_fd = FAKE_FD_BASE;
    F.blocked = -1;

    /* c0: close mode (server: a done connection reads on to the server's EOF, or its timeout), slots,
       streams; c1: requests per connection and the budget; c2: a body or none, open loop */
    static const int modes[4] = {CLOSE_KEEPALIVE, CLOSE_FIN, CLOSE_SERVER, CLOSE_RST};
    k->io = &fake_backend;
    k->close_mode = modes[c0 & 3];
    int capacity = 1 + ((c0 >> 2) & 1);
    int streams = 1 + ((c0 >> 3) & 3);
    k->per_connection = (uint32_t)(c1 & 3);
    k->budget = (c1 >> 2) ? (c1 >> 2) : -1;
    k->open_loop = (c2 >> 1) & 1;
    k->timeout_ns = k->connect_timeout_ns = TIMEOUT_NS;
    k->request = copy("GET / HTTP/1.1\r\n\r\n", 18); /* core_init wants one; HTTP/2 does not use it */
    k->request_len = 18;
    k->last_request = copy("GET / HTTP/1.1\r\n\r\n", 18);
    k->last_request_len = 18;
    k->capacity = capacity;
    static const char nv[] = ":method\0POST\0:scheme\0http\0:authority\0x\0:path\0/\0";
    require(h2_init(k, streams, nv, sizeof nv - 1, "body", (c2 & 1) ? 4 : 0) == 0);
    require(core_init(k, capacity) == 0);
    core_start(k, now_ns(), capacity);
    check(k, 0);

    while (in.at < in.n) {
        int op = byte(&in);
        int arg = op / N_OPS;
        conn *c = &k->conns[arg % capacity];
        int flag = (arg / MAX_CAPACITY) & 1;
        op %= N_OPS;
        if (op == OP_ABANDON)
            break;
        switch (op) {
        case OP_DATA: { /* raw bytes from the server */
            size_t len = 1 + (size_t)byte(&in);
            if (len > in.n - in.at)
                len = in.n - in.at;
            const uint8_t *bytes = in.d + in.at;
            in.at += len;
            if (connected(c) && len)
                server_bytes(k, c, bytes, len, flag);
            break;
        }
        case OP_FRAME: { /* a frame: type, flags, stream (0 or one of the client's), payload */
            uint8_t frame[9 + 255];
            int type = byte(&in) % 10, flags = byte(&in), sid = byte(&in) % 9;
            size_t len = (size_t)byte(&in);
            if (len > in.n - in.at)
                len = in.n - in.at;
            uint32_t id = sid ? (uint32_t)(2 * sid - 1) : 0;
            frame[0] = 0;
            frame[1] = (uint8_t)(len >> 8);
            frame[2] = (uint8_t)len;
            frame[3] = (uint8_t)type;
            frame[4] = (uint8_t)flags;
            frame[5] = (uint8_t)(id >> 24);
            frame[6] = (uint8_t)(id >> 16);
            frame[7] = (uint8_t)(id >> 8);
            frame[8] = (uint8_t)id;
            memcpy(frame + 9, in.d + in.at, len);
            in.at += len;
            if (connected(c))
                server_bytes(k, c, frame, 9 + len, flag);
            break;
        }
        case OP_EOF:
            if (connected(c))
                core_peer_closed(k, c);
            break;
        case OP_RESET:
            if (connected(c))
                core_read_failed(k, c, ECONNRESET);
            break;
        case OP_SOCKET: {
            int i = slot(k, c);
            if (!(c->flags & F_SOCKET_PENDING) || F.socket_gen[i] != c->gen + 1)
                break;
            F.socket_gen[i] = 0;
            if (flag) {
                core_socket_made(k, c, -EMFILE);
            } else {
                F.open_fd[i] = F.next_fd++;
                core_socket_made(k, c, F.open_fd[i]);
            }
            break;
        }
        case OP_CONNECT: { /* the connect's EPOLLOUT: connected, the session starts (handle()) */
            int i = slot(k, c);
            if (c->state != C_CONNECTING || c->fd < 0 || F.connect_gen[i] != c->gen + 1)
                break;
            F.connect_gen[i] = 0;
            if (flag) {
                core_connect_failed(k, c, ECONNREFUSED);
                break;
            }
            uint32_t gen = c->gen;
            if (core_connected(k, c, now_ns()) && c->gen == gen)
                fk_send(k, c);
            break;
        }
        case OP_WRITE: { /* EPOLLOUT on a blocked write: it goes on, or the write fails */
            int i = slot(k, c);
            if (!connected(c) || F.send_gen[i] != c->gen + 1)
                break;
            if (flag) {
                F.send_gen[i] = 0;
                k->h2->ended(k, c, EPIPE);
                break;
            }
            fk_send(k, c);
            break;
        }
        case OP_BLOCK: /* the socket's buffer: full (takes nothing), half, or room for all */
            F.blocked = arg % 3 - 1;
            break;
        case OP_TICK: {
            static const int64_t steps[4] = {0, 2000000LL, 150000000LL, TIMEOUT_NS + 100000000LL};
            core_tick(k, now_ns() + steps[arg % 4]);
            break;
        }
        case OP_STOP:
            core_stop(k);
            break;
        case OP_DUE: { /* open loop: send times, due now */
            if (!k->open_loop || k->stopping)
                break;
            int64_t times[4];
            int n = 1 + arg % 4;
            for (int t = 0; t < n; t++)
                times[t] = now_ns();
            require(core_add_due(k, times, (size_t)n) == 0);
            if (arg >= 16)
                k->schedule_done = 1;
            break;
        }
        }
        check(k, 0);
    }
    core_abandon(k);
    check(k, 1);
    if (getenv("TWLOAD_FUZZ_VERBOSE")) { /* what a run did, to see that the seeds do what they say */
        fprintf(stderr, "taken %lld answers %lld withdrawn %lld close_errors %lld opened %lld errors:",
                (long long)k->stats[S_TAKEN], (long long)k->stats[S_REQUESTS], (long long)k->stats[S_WITHDRAWN],
                (long long)k->stats[S_CLOSE_ERRORS], (long long)k->stats[S_OPENED]);
        for (int e = 0; e < N_ERRORS; e++)
            if (k->stats[S_ERRORS + e])
                fprintf(stderr, " %d=%lld", e, (long long)k->stats[S_ERRORS + e]);
        fputc('\n', stderr);
    }
    core_fini(k);
    h2_fini(k);
    free(k);
    return 0;
}
