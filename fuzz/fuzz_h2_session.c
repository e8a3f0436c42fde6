/* libFuzzer harness for HTTP/2 in the core (src/twload/engine/core/h2.c): nghttp2's client session
 * fed fuzzed server bytes through the core's own callbacks (core_received, core_peer_closed,
 * core_read_failed, the sweep's timeouts), as fuzz/fuzz_core_conn.c does for HTTP/1.1.
 *
 * Build: clang -fsanitize=fuzzer,address,undefined with core.c, h2.c and http1_parse.c, linked with
 * libnghttp2 (see `make fuzz-h2`). The backend is the fake of fuzz/fake_backend.c: no socket, no I/O;
 * its send(), this harness's fake_send, is loop_epoll.c's h2_write with the socket replaced by a sink that takes all, half or nothing of
 * what h2_output gives (a full socket buffer), so the session's pending bytes are exercised too.
 * The harness plays the kernel and the server: connects done or refused, writes blocked and
 * unblocked, the server's bytes (raw, cut where the input says, or a frame built from the input:
 * type, flags, one of the client's stream ids, a payload), EOF, a reset, time passing (each
 * stream's timeout), stop, open-loop send times.
 *
 * Input: 3 bytes of configuration (close mode, slots 1-2, streams 1-4, requests per connection,
 * budget, a body, open loop, a request set of two targets, one templated, as --targets makes them),
 * then operations, each one byte (what, and an argument: the slot, a flag) followed by its
 * data; fuzz/corpus_h2 holds one seed per situation.
 *
 * Checked after every step: the request ledger (requests taken == results + withdrawn + those still
 * owed: streams in flight, slots carrying their request to a connect, requests refused and waiting
 * for a stream), and after the abandon that nothing is owed; n_fd, n_connecting and in_flight never
 * negative, n_fd equal to the fake's open descriptors, sessions never more than open connections (none
 * after the abandon); the stats never decrease; with a request set, every answer counts under a target
 * and no target counts an error the worker did not.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "fake_backend.h"
#include "h2.h"

#define MAX_CAPACITY 2
#if MAX_CAPACITY > FAKE_SLOTS
#error "the fake backend records FAKE_SLOTS slots"
#endif

/* ---- the fake's writes ---- */

static int blocked; /* the socket takes nothing (0), or half (1) of each write; -1: all */

/* loop_epoll.c's h2_write, writing into a sink */
void fake_send(core *k, conn *c)
{
    int i = fake_slot(k, c);
    uint32_t gen = c->gen;
    for (int rounds = 0; rounds < 64; rounds++) {
        size_t len = 0;
        const uint8_t *out = h2_output(k, c, &len);
        if (c->gen != gen)
            return;
        if (!out || len == 0) {
            c->state = C_READING;
            fake.send_gen[i] = 0;
            return;
        }
        size_t n = blocked < 0 ? len : blocked == 1 ? len / 2 : 0;
        h2_wrote(k, c, n);
        if (c->gen != gen)
            return;
        if (n < len) {
            c->state = C_SENDING;
            fake.send_gen[i] = c->gen + 1;
            return;
        }
    }
    fake.send_gen[i] = c->gen + 1; /* more than 64 writes' worth: the rest at the next write operation */
}

/* ---- invariants ---- */

static int64_t owed(const core *k)
{
    int64_t n = k->in_flight + h2_owed(k);
    for (int i = 0; i < k->capacity; i++)
        n += (k->conns[i].flags & F_HAS_REQUEST) != 0;
    if (k->open_loop)
        n += (int64_t)(k->due_seen - k->due_head); /* due, taken, waiting for a stream */
    return n;
}

static void check(const core *k, int finished)
{
    int fds = 0, connecting = 0;
    for (int i = 0; i < k->capacity; i++) {
        const conn *c = &k->conns[i];
        fds += c->fd >= 0 || (c->flags & F_SOCKET_PENDING);
        connecting += c->state == C_CONNECTING;
        require(c->fd == fake.open_fd[i]);
        require(!(c->flags & F_IN_FLIGHT)); /* HTTP/2 counts its streams in k->in_flight alone */
    }
    require(k->in_flight >= 0);
    require(k->n_fd >= 0 && k->n_fd == fds);
    require(k->n_connecting >= 0 && k->n_connecting == connecting);
    require(fake_unsettled(k) == owed(k)); /* the ledger */
    require(h2_sessions(k) >= 0 && h2_sessions(k) <= fds); /* a session only on an open connection */
    if (finished)
        require(owed(k) == 0 && k->n_fd == 0 && k->in_flight == 0 && h2_sessions(k) == 0);
    int64_t answers = 0;
    for (int s = 0; s < N_STATUS; s++)
        answers += k->stats[S_STATUS + s];
    require(answers == k->stats[S_REQUESTS]);
    require(!fake_stats_decreased(k));
    require(k->peer_len >= -1 && k->peer_len <= (int)sizeof k->peer_bytes);
    fake_check_targets(k);
}

/* ---- a request set: two targets, the second templated (as engine/request_set.py compile_target_h2
   makes them: the header block's name\0value\0 pairs, then the body) ---- */

#define LIT(s) {.kind = TPL_LIT, .len = sizeof(s) - 1, .data = (s)}

static void request_set(core *k)
{
    static const tpl_op plain[] = {
        LIT(":method\0GET\0:scheme\0http\0:authority\0x\0:path\0/a\0x-a\0one\0x-a\0two\0"),
    };
    static const tpl_op templated[] = {
        LIT(":method\0POST\0:scheme\0http\0:authority\0x\0:path\0/b/"), {.kind = TPL_SEQ},
        LIT("?r="), {.kind = TPL_RAND, .arg = 1000}, LIT("\0x-id\0"), {.kind = TPL_UUID},
        LIT("\0content-length\0"), {.kind = TPL_CLEN}, LIT("\0"),
        /* the body */
        LIT("{\"id\":"), {.kind = TPL_SEQ}, LIT(",\"w\":"), {.kind = TPL_WORKER}, LIT("}"),
    };
    k->targets = calloc(2, sizeof *k->targets);
    k->order = malloc(3 * sizeof *k->order);
    require(k->targets && k->order);
    k->n_targets = 2;
    k->order[0] = 0; /* weights 2 and 1 */
    k->order[1] = 1;
    k->order[2] = 0;
    k->order_len = 3;
    k->n_groups = 2;
    k->worker = 1;
    k->workers = 2;
    const tpl_op *ops[2] = {plain, templated};
    uint32_t n_ops[2] = {sizeof plain / sizeof plain[0], sizeof templated / sizeof templated[0]};
    uint32_t body_start[2] = {1, 9};
    for (int i = 0; i < 2; i++) {
        req_target *t = &k->targets[i];
        t->group = i;
        t->n_ops = n_ops[i];
        t->body_start = body_start[i];
        t->ops = malloc(n_ops[i] * sizeof *t->ops); /* the literals stay in the harness's static memory */
        require(t->ops != NULL);
        memcpy(t->ops, ops[i], n_ops[i] * sizeof *t->ops);
    }
    require(core_targets_init(k) == 0);
    require(h2_targets_init(k) == 0);
}

/* ---- the input ---- */

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
    fake_reset();
    blocked = -1;

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
    if ((c2 >> 2) & 1) /* c2's third bit: a request set */
        request_set(k);
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
        case OP_SOCKET:
            fake_socket_op(k, c, flag);
            break;
        case OP_CONNECT: /* the connect's EPOLLOUT: connected, the session starts (handle()) */
            fake_connect_op(k, c, flag);
            break;
        case OP_WRITE: { /* EPOLLOUT on a blocked write: it goes on, or the write fails */
            int i = fake_slot(k, c);
            if (!connected(c) || fake.send_gen[i] != c->gen + 1)
                break;
            if (flag) {
                fake.send_gen[i] = 0;
                k->h2->ended(k, c, EPIPE);
                break;
            }
            fake_send(k, c);
            break;
        }
        case OP_BLOCK: /* the socket's buffer: full (takes nothing), half, or room for all */
            blocked = arg % 3 - 1;
            break;
        case OP_TICK:
            fake_tick_op(k, arg);
            break;
        case OP_STOP:
            core_stop(k);
            break;
        case OP_DUE: /* open loop: send times, due now */
            fake_due_op(k, arg);
            break;
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
