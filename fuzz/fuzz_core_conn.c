/* libFuzzer harness for the core's connection state machine (src/twload/engine/core/core.c).
 *
 * Build: clang -fsanitize=fuzzer,address,undefined with core.c and http1_parse.c, nothing else
 * (see `make fuzz`): core.c needs only libc, so no Python and no seam. The backend is the fake of
 * fuzz/fake_backend.c: it makes no socket and does no I/O, it only records what the core asks of
 * it; its writes are this harness's fake_send. The harness plays both the kernel and the server, as loop_epoll.c would report them: a socket
 * made or refused, a connect done or refused, a request written whole or in parts, bytes
 * read (cut wherever the input says, including bytes nobody asked for), EOF, a reset, time
 * passing (timeouts, backoff), stop, fewer or more connections, open-loop send times.
 *
 * Input: 4 bytes of configuration (close mode, HEAD, open loop, 1-3 slots, requests per
 * connection, budget, head cap, how the fake writes, a request set of two targets (one
 * templated) in round-robin or random order, and with 2-3 slots maybe on two destinations, each
 * target on its own: the open loop then has a lane each, core.c lane_push; or a streamed set: five
 * targets in a spool (a memfd, engine/spool.py's records) read two a page, so pages are loaded anew
 * while requests of theirs may be chosen or half written), then operations, each one byte (what,
 * and an argument: the slot, a flag) followed by its data; fuzz/corpus_core holds one seed
 * per situation. A request is written in the send() call (loop_epoll.c's write_request), or,
 * as when that send() says EAGAIN, by a later write operation, whole or in parts. At the end
 * (or at an abandon operation) the run ends as engine/core/__init__.py ends one: core_abandon.
 *
 * Checked after every step: the request ledger (requests taken == results + withdrawn +
 * those still pending on a connection or overdue, where results are the answers plus the
 * errors outside S_CLOSE_ERRORS, as __init__.py counts them), and after the abandon that
 * nothing is pending; in_flight, n_fd and n_connecting never negative and equal to what the
 * connections say; the stats never decrease; answers never exceed the requests whose first
 * byte went out, on the worker and on each connection; the fake's open descriptors are
 * exactly the connections' descriptors, and none is closed twice. With a request set: every
 * request written is one whole head whose Content-Length is its body's length, and carries
 * Connection: close exactly when it is its connection's last under --close server; every answer
 * counts under a target, and no target counts an error the worker did not.
 * The renderer fills our own templates, not network bytes: the request set is here for the ledger
 * and these checks of what is written, not because the renderer parses anything.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core.h"
#include "fake_backend.h"

#define MAX_CAPACITY 3
#if MAX_CAPACITY > FAKE_SLOTS
#error "the fake backend records FAKE_SLOTS slots"
#endif

/* ---- how the fake writes, and what it saw written ---- */

typedef struct writes {
    int deferred_sends;  /* io_uring-like: a send completes at a later write operation */
    int partial_writes;  /* the first write of a request takes half of it */
    uint64_t begun;      /* requests whose first byte went out (core_begin) */
    uint32_t begun_on[MAX_CAPACITY]; /* ... on the slot's current connection */
    uint32_t gen_of[MAX_CAPACITY];   /* the connection begun_on counts for */
} writes;

static writes F;

/* a request set: the request about to be written is one whole head, its Content-Length its body's
   length, and Connection: close exactly on a connection's last request under --close server */
static void check_request(const core *k, const conn *c, const char *req, uint32_t len)
{
    static const char cl[] = "\r\nContent-Length: ", close[] = "\r\nConnection: close\r\n";
    const char *end = memmem(req, len, "\r\n\r\n", 4);
    require(end != NULL);
    uint32_t head = (uint32_t)(end - req) + 4, body = 0;
    const char *at = memmem(req, head, cl, sizeof cl - 1);
    if (at)
        for (at += sizeof cl - 1; *at >= '0' && *at <= '9'; at++)
            body = body * 10 + (uint32_t)(*at - '0');
    require(len == head + body);
    int last = k->per_connection && c->sent + 1 >= k->per_connection;
    require((memmem(req, head, close, sizeof close - 1) != NULL) == (last && k->close_mode == CLOSE_SERVER));
}

/* Write n bytes of c's request (all that is left if n is 0), as write_request() in loop_epoll.c. */
static void write_some(core *k, conn *c, uint32_t n)
{
    int i = fake_slot(k, c);
    uint32_t len;
    const char *req = core_request(k, c, &len);
    if (!(c->flags & F_IN_FLIGHT)) {
        if (k->n_targets)
            check_request(k, c, req, len);
        core_begin(k, c, now_ns());
        F.begun++;
        if (F.gen_of[i] != c->gen) {
            F.gen_of[i] = c->gen;
            F.begun_on[i] = 0;
        }
        F.begun_on[i]++;
    }
    if (n == 0 || n > len - c->woff)
        n = len - c->woff;
    volatile unsigned char sum = 0; /* the bytes written are read, as send() reads them: ASan sees a freed page */
    for (uint32_t j = 0; j < n; j++)
        sum += (unsigned char)req[c->woff + j];
    (void)sum;
    core_sent(k, c, n);
}

void fake_send(core *k, conn *c)
{
    int i = fake_slot(k, c);
    if (F.deferred_sends) {
        fake.send_gen[i] = c->gen + 1;
        return;
    }
    uint32_t len;
    core_request(k, c, &len);
    write_some(k, c, F.partial_writes && !(c->flags & F_IN_FLIGHT) ? len / 2 : 0);
    if (c->state == C_SENDING)
        fake.send_gen[i] = c->gen + 1; /* the rest waits for a write operation (EPOLLOUT) */
}

/* ---- invariants ---- */

/* requests taken that are still to get a result: on a connection, or due (open loop) */
static int64_t pending(const core *k)
{
    int64_t n = 0;
    for (int i = 0; i < k->capacity; i++)
        n += (k->conns[i].flags & (F_IN_FLIGHT | F_HAS_REQUEST)) != 0;
    if (k->open_loop)
        n += (int64_t)(k->due_seen - k->due_head); /* due, taken, waiting for a connection */
    if (k->open_loop && k->n_dests) /* ... in its destination's lane */
        for (int d = 0; d < k->n_dests; d++)
            n += (int64_t)(k->dests[d].due_len - k->dests[d].due_head);
    return n;
}

static void check(const core *k, int finished)
{
    int in_flight = 0, fds = 0, connecting = 0;
    for (int i = 0; i < k->capacity; i++) {
        const conn *c = &k->conns[i];
        in_flight += (c->flags & F_IN_FLIGHT) != 0;
        fds += c->fd >= 0 || (c->flags & F_SOCKET_PENDING);
        connecting += c->state == C_CONNECTING;
        require(c->fd == fake.open_fd[i]); /* the core's descriptors are the fake's open ones */
        require(c->completed <= c->sent);
        if (F.gen_of[i] == c->gen && c->fd >= 0)
            require(c->completed <= F.begun_on[i]);
    }
    require(k->in_flight >= 0 && k->in_flight == in_flight);
    require(k->n_fd >= 0 && k->n_fd == fds);
    require(k->n_connecting >= 0 && k->n_connecting == connecting);
    require(fake_unsettled(k) == pending(k)); /* the ledger: taken == results + withdrawn + pending */
    if (finished)
        require(fake_unsettled(k) == 0 && k->n_fd == 0 && k->in_flight == 0);

    int64_t answers = 0;
    for (int s = 0; s < N_STATUS; s++)
        answers += k->stats[S_STATUS + s];
    require(answers == k->stats[S_REQUESTS]);
    require((uint64_t)answers <= F.begun); /* never more answers than requests sent */

    require(!fake_stats_decreased(k)); /* the stats never decrease */
    require(k->peer_len >= -1 && k->peer_len <= (int)sizeof k->peer_bytes);
    fake_check_targets(k);
}

/* ---- a request set: two targets, the second templated (as engine/request_set.py makes them) ---- */

static char *copy(const char *s, uint32_t *len);

static tpl_op lit(int kind, const char *s)
{
    return (tpl_op){.kind = (uint8_t)kind, .len = (uint32_t)strlen(s), .data = s};
}

static void request_set(core *k, int random_order, int capacity)
{
    static const char get[] = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
    static const char get_last[] = "GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    tpl_op ops[] = {
        lit(TPL_LIT, "POST /b/"), {.kind = TPL_SEQ}, lit(TPL_LIT, "?r="), {.kind = TPL_RAND, .arg = 1000},
        lit(TPL_LIT, " HTTP/1.1\r\nHost: x\r\nX-Id: "), {.kind = TPL_UUID},
        lit(TPL_LIT, "\r\nContent-Length: "), {.kind = TPL_CLEN}, lit(TPL_LIT, "\r\n"),
        lit(TPL_LAST_LIT, "Connection: close\r\n"), lit(TPL_LIT, "\r\n"),
        /* the body */
        lit(TPL_LIT, "{\"id\":"), {.kind = TPL_SEQ}, lit(TPL_LIT, ",\"w\":"), {.kind = TPL_WORKER},
        lit(TPL_LIT, "}"),
    };
    k->targets = calloc(2, sizeof *k->targets);
    k->order = malloc(3 * sizeof *k->order);
    require(k->targets && k->order);
    k->n_targets = 2;
    k->order[0] = 0; /* weights 2 and 1 */
    k->order[1] = 1;
    k->order[2] = 0;
    k->order_len = 3;
    k->order_random = random_order;
    k->n_groups = 2;
    k->worker = 1;
    k->workers = 2;
    req_target *t = &k->targets[0];
    t->plain = copy(get, &t->plain_len);
    t->last = copy(k->close_mode == CLOSE_SERVER ? get_last : get, &t->last_len);
    t->head = (uint8_t)k->head_request;
    t = &k->targets[1];
    t->group = 1;
    t->plain = copy("", &t->plain_len);
    t->last = copy("", &t->last_len);
    t->n_ops = sizeof ops / sizeof ops[0];
    t->body_start = 11;
    t->ops = malloc(sizeof ops);
    uint32_t pool = 0;
    for (uint32_t j = 0; j < t->n_ops; j++)
        pool += ops[j].len;
    t->pool = malloc(pool);
    require(t->ops && t->pool);
    char *at = t->pool;
    for (uint32_t j = 0; j < t->n_ops; j++) { /* the pool holds the literals, as _core.c copies them */
        if (ops[j].kind == TPL_LAST_LIT && k->close_mode != CLOSE_SERVER)
            ops[j].len = 0;
        if (ops[j].len)
            memcpy(at, ops[j].data, ops[j].len);
        t->ops[j] = ops[j];
        t->ops[j].data = at;
        at += ops[j].len;
    }
    k->capacity = capacity;
    require(core_targets_init(k) == 0);
}

/* two destinations (after request_set, with 2 or more slots): target 0 (weight 2) on the first,
 * target 1 on the second; the slots alternate between them, and (open loop) each due request's
 * destination follows the weights' cycle 0 1 0 */
static void two_destinations(core *k)
{
    static const uint16_t cycle[] = {0, 1, 0};
    k->dests = calloc(2, sizeof *k->dests);
    k->dest_cycle = malloc(sizeof cycle);
    require(k->dests && k->dest_cycle);
    memcpy(k->dest_cycle, cycle, sizeof cycle);
    k->dest_cycle_len = 3;
    k->n_dests = 2;
    k->order[0] = 0; /* the first's part [0, 2), the second's [2, 3) */
    k->order[1] = 0;
    k->order[2] = 1;
    k->dests[0].order_start = 0;
    k->dests[0].order_len = 2;
    k->dests[1].order_start = 2;
    k->dests[1].order_len = 1;
    k->targets[1].dest = 1;
    for (int i = 0; i < k->capacity; i++)
        k->conns[i].dest = (uint16_t)(i % 2);
    require(core_lanes_init(k) == 0);
}

/* ---- a streamed request set: a spool of records, as engine/spool.py writes them ---- */

static size_t put_record(char *out, uint16_t group, uint16_t weight, int templated, const char *plain,
                         const char *last, const tpl_op *ops, uint32_t n_ops, uint32_t body_start)
{
    char *p = out + 4;
    uint8_t flags[4] = {0, 0, (uint8_t)templated, 0};
    uint32_t a = templated ? n_ops : (uint32_t)strlen(plain), b = templated ? body_start : (uint32_t)strlen(last);
    memcpy(p, &group, 2);
    memcpy(p + 2, &weight, 2);
    memcpy(p + 4, flags, 4);
    memcpy(p + 8, &a, 4);
    memcpy(p + 12, &b, 4);
    p += 16;
    if (!templated) {
        memcpy(p, plain, a);
        memcpy(p + a, last, b);
        p += a + b;
    } else {
        for (uint32_t j = 0; j < n_ops; j++) {
            uint8_t kind = ops[j].kind;
            uint32_t len = ops[j].len;
            memset(p, 0, 16);
            memcpy(p, &kind, 1);
            memcpy(p + 4, &len, 4);
            memcpy(p + 8, &ops[j].arg, 8);
            p += 16;
        }
        for (uint32_t j = 0; j < n_ops; j++) {
            if (ops[j].len)
                memcpy(p, ops[j].data, ops[j].len);
            p += ops[j].len;
        }
    }
    uint32_t size = (uint32_t)(p - out - 4);
    memcpy(out, &size, 4);
    return (size_t)(p - out);
}

static void streamed_set(core *k, int capacity)
{
    static char spool[4096];
    int server = k->close_mode == CLOSE_SERVER;
    const char *get = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
    const char *get_last = server ? "GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" : get;
    const char *del = "DELETE /d HTTP/1.1\r\nHost: x\r\n\r\n";
    const char *del_last = server ? "DELETE /d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" : del;
    tpl_op ops[] = {
        lit(TPL_LIT, "POST /b/"), {.kind = TPL_SEQ}, lit(TPL_LIT, " HTTP/1.1\r\nHost: x\r\nContent-Length: "),
        {.kind = TPL_CLEN}, lit(TPL_LIT, "\r\n"), lit(TPL_LAST_LIT, server ? "Connection: close\r\n" : ""),
        lit(TPL_LIT, "\r\n"),
        /* the body */
        lit(TPL_LIT, "{\"id\":"), {.kind = TPL_SEQ}, lit(TPL_LIT, ",\"u\":\""), {.kind = TPL_UUID}, lit(TPL_LIT, "\"}"),
    };
    uint32_t n_ops = sizeof ops / sizeof ops[0];
    size_t at = 0;
    at += put_record(spool + at, 0, 1, 0, get, get_last, NULL, 0, 0);
    at += put_record(spool + at, 1, 2, 1, NULL, NULL, ops, n_ops, 7);
    at += put_record(spool + at, 0, 1, 0, del, del_last, NULL, 0, 0);
    at += put_record(spool + at, 1, 1, 1, NULL, NULL, ops, n_ops, 7);
    at += put_record(spool + at, 0, 3, 0, get, get_last, NULL, 0, 0);
    require(at <= sizeof spool);
    int fd = memfd_create("twload-fuzz-spool", MFD_CLOEXEC);
    require(fd >= 0 && write(fd, spool, at) == (ssize_t)at);
    k->paged = 1;
    k->spool_fd = fd;
    k->spool_len = at;
    k->page_cap = 2;
    k->render_max = 512;
    k->n_groups = 2;
    k->worker = 1;
    k->workers = 2;
    k->capacity = capacity;
    require(core_spool_init(k) == 0);
}

/* ---- the input ---- */

enum { OP_DATA, OP_EOF, OP_RESET, OP_SOCKET, OP_CONNECT, OP_WRITE, OP_TICK, OP_STOP, OP_CONNECTIONS, OP_DUE,
       OP_ABANDON, N_OPS };

/* a connection the server can talk to */
static int connected(const conn *c)
{
    return c->fd >= 0 && (c->state == C_SENDING || c->state == C_READING || c->state == C_AWAIT_EOF
                          || c->state == C_IDLE);
}

static char *copy(const char *s, uint32_t *len)
{
    *len = (uint32_t)strlen(s);
    char *p = malloc(*len);
    require(p != NULL);
    memcpy(p, s, *len);
    return p;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    input in = {data, size, 0};
    int verbose = getenv("TWLOAD_FUZZ_VERBOSE") != NULL;
    int c0 = byte(&in), c1 = byte(&in), c2 = byte(&in), c3 = byte(&in);
    core *k = calloc(1, sizeof *k);
    require(k != NULL);
    memset(&F, 0, sizeof F);
    fake_reset();

    /* configuration: c0 close mode, HEAD, open loop, capacity; c1 requests per connection and
     * the budget; c2 the head cap; c3 how the fake writes */
    k->io = &fake_backend;
    k->close_mode = c0 & 3;
    k->head_request = (c0 >> 2) & 1;
    k->open_loop = (c0 >> 3) & 1;
    int capacity = 1 + ((c0 >> 4) & 3) % MAX_CAPACITY;
    k->per_connection = (uint32_t)(c1 & 3);
    k->budget = (c1 >> 2) ? (c1 >> 2) : -1;
    k->max_head = (c2 & 1) ? 65536 : 24 + (uint32_t)(c2 >> 1);
    F.deferred_sends = c3 & 1;
    F.partial_writes = (c3 >> 1) & 1;
    k->timeout_ns = k->connect_timeout_ns = TIMEOUT_NS;
    k->request = copy("GET / HTTP/1.1\r\nHost: x\r\n\r\n", &k->request_len);
    k->last_request = copy(k->close_mode == CLOSE_SERVER ? "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                                                         : "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
                           &k->last_request_len);
    if (((c3 >> 2) & 1) && ((c3 >> 5) & 1))
        streamed_set(k, capacity);
    else if ((c3 >> 2) & 1)
        request_set(k, (c3 >> 3) & 1, capacity);
    require(core_init(k, capacity) == 0);
    if (((c3 >> 2) & 1) && ((c3 >> 4) & 1) && !((c3 >> 5) & 1) && capacity >= 2)
        two_destinations(k);
    int64_t started = now_ns();
    core_start(k, started, capacity);
    check(k, 0);

    while (in.at < in.n) {
        int op = byte(&in);
        int arg = op / N_OPS;
        conn *c = &k->conns[arg % capacity];
        op %= N_OPS;
        if (op == OP_ABANDON)
            break;
        switch (op) {
        case OP_DATA: { /* bytes from the server, cut where the input says; maybe its FIN with them */
            size_t len = 1 + (size_t)byte(&in);
            if (len > in.n - in.at)
                len = in.n - in.at;
            const uint8_t *bytes = in.d + in.at;
            in.at += len;
            if (!connected(c) || len == 0)
                break;
            char *piece = malloc(len); /* exactly its size: ASan sees any read beyond it */
            require(piece != NULL);
            memcpy(piece, bytes, len);
            uint32_t gen = c->gen;
            int fin = (arg / MAX_CAPACITY) & 1;
            if (fin) /* readable(): EPOLLRDHUP came with these bytes */
                c->flags |= F_PEER_CLOSED;
            if (!core_received(k, c, piece, len) && fin && c->gen == gen)
                core_peer_closed(k, c);
            free(piece);
            break;
        }
        case OP_EOF:
            if (connected(c))
                core_peer_closed(k, c);
            break;
        case OP_RESET: /* a read fails, as the backends hand it on */
            if (connected(c))
                core_read_failed(k, c, ECONNRESET);
            break;
        case OP_SOCKET: /* the socket asked for is made, or not */
            fake_socket_op(k, c, (arg / MAX_CAPACITY) & 1);
            break;
        case OP_CONNECT: /* the connect completes (then the first write, as handle() does), or fails */
            fake_connect_op(k, c, (arg / MAX_CAPACITY) & 1);
            break;
        case OP_WRITE: { /* a pending write goes on: some of it, all of it, or it fails */
            int i = fake_slot(k, c);
            if ((c->state != C_SENDING && c->state != C_READING) || fake.send_gen[i] != c->gen + 1)
                break; /* C_READING: connected, its first write not yet out (deferred) */
            int how = (arg / MAX_CAPACITY) % 3;
            if (how == 2) {
                fake.send_gen[i] = 0;
                core_fail(k, c, EPIPE);
                break;
            }
            write_some(k, c, how == 1 ? 1 : 0);
            if (c->state != C_SENDING)
                fake.send_gen[i] = 0;
            break;
        }
        case OP_TICK: /* time passes: timers, backoff, timeouts, the open loop's due requests */
            fake_tick_op(k, arg);
            break;
        case OP_STOP:
            core_stop(k);
            break;
        case OP_CONNECTIONS:
            core_set_connections(k, arg % (capacity + 1));
            break;
        case OP_DUE: /* open loop: send times, due now */
            fake_due_op(k, arg);
            break;
        }
        if (verbose) {
            static const char *const names[N_OPS] = {"data", "eof", "reset", "socket", "connect", "write",
                                                     "tick", "stop", "connections", "due", "abandon"};
            fprintf(stderr, "%-11s arg %2d:", names[op], arg);
            for (int i = 0; i < capacity; i++)
                fprintf(stderr, " [slot %d state %d flags 0x%x gen %u]", i, k->conns[i].state, k->conns[i].flags,
                        k->conns[i].gen);
            fprintf(stderr, " taken %lld answers %lld withdrawn %lld\n", (long long)k->stats[S_TAKEN],
                    (long long)k->stats[S_REQUESTS], (long long)k->stats[S_WITHDRAWN]);
        }
        check(k, 0);
    }
    core_abandon(k);
    check(k, 1);
    if (verbose) { /* what a run did, to see that the seeds do what they say */
        fprintf(stderr, "taken %lld answers %lld withdrawn %lld close_errors %lld sent %llu opened %lld errors:",
                (long long)k->stats[S_TAKEN], (long long)k->stats[S_REQUESTS], (long long)k->stats[S_WITHDRAWN],
                (long long)k->stats[S_CLOSE_ERRORS], (unsigned long long)F.begun, (long long)k->stats[S_OPENED]);
        for (int e = 0; e < N_ERRORS; e++)
            if (k->stats[S_ERRORS + e])
                fprintf(stderr, " %d=%lld", e, (long long)k->stats[S_ERRORS + e]);
        fputc('\n', stderr);
        if (k->paged)
            fprintf(stderr, "streamed: page %d at %u of %u, pages walked again %lld, next record at %llu of %llu\n",
                    k->page_cur, k->page_pos, k->page_n[k->page_cur], (long long)k->page_repeats,
                    (unsigned long long)k->spool_off, (unsigned long long)k->spool_len);
    }
    core_fini(k);
    free(k);
    return 0;
}
