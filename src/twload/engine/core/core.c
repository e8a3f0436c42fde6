/* What a connection does next, whatever the I/O backend: slots, close strategies, open-loop
 * dispatch, timeouts, connect backoff, and the counters and histograms Python collects.
 *
 * The backends (loop_epoll.c, loop_uring.c) do the I/O and report what happened through
 * core_connected / core_sent / core_received / core_received_unsent / core_peer_closed /
 * core_read_failed / core_connect_failed / core_fail / core_close_unsent. Any of these may close the connection and start the slot's next one in the same
 * conn struct (its gen changes): a backend must not touch a conn after such a call unless
 * its gen is unchanged.
 */
#define _GNU_SOURCE
#include "core.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24 /* include/uapi/linux/in.h */
#endif

#define MAX_CONNECTING 16        /* open loop: connects in progress at once, per worker */
#define BACKOFF_MAX_MS 100       /* a failing slot retries at least this often */
#define SWEEP_NS 50000000LL      /* timeouts are checked this often */
#define READ_BUFFER (64 * 1024)  /* one per worker */
/* Connects started per turn of the loop; the rest wait on the backoff list with t_retry 0. With
   tens of thousands of slots (the start, or a mass timeout), each connect() costing a port search
   (net/ipv4/inet_hashtables.c: __inet_hash_connect) would otherwise keep the loop from its
   timers, the stop flag and the deadline for seconds. */
#define OPENS_PER_TURN 128
#define SPOOL_CHUNK (1u << 20)   /* a streamed set's records are read this much at a time */
#define REFILL_NS 5000000LL      /* a spent page is looked at this often until no slot holds its targets */
#define PAGE_BYTES (8u << 20)    /* a page ends at this many bytes of records too (large requests: fewer a page) */

int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int slot_of(const core *k, const conn *c) { return (int)(c - k->conns); }

/* hdr_histogram.c: counts_index_for(), for unit magnitude 0 */
int hist_index(int64_t v) {
    int pow2ceiling = 64 - __builtin_clzll((uint64_t)v | H_SUB_MASK);
    int bucket = pow2ceiling - (H_SUB_HALF_MAG + 1);
    int sub = (int)(v >> bucket);
    return ((bucket + 1) << H_SUB_HALF_MAG) + (sub - H_SUB_HALF);
}

static void record(core *k, int h, int sum_slot, int64_t ns) {
    int64_t us = ns / 1000;
    k->stats[sum_slot] += us;  /* the exact sum, for the mean (as metrics.Interval.fold) */
    if (us < 1) us = 1;
    if (us > H_HIGHEST) us = H_HIGHEST;
    k->hist[h][hist_index(us)]++;
}

/* https: a handshake's own time, apart from the TCP connect (H_CONNECT) */
void core_record_tls(core *k, int64_t ns) { record(k, H_TLS, S_SUM_TLS, ns); }

/* a request set: the per-target row target's requests count in (NULL: none, or no request set) */
static int64_t *group_row_of(core *k, int32_t target) {
    if (!k->n_targets || target < 0) return NULL;
    int g = k->targets[target].group;
    k->gtouched[g] = 1;
    return k->gstats + (size_t)g * G_LEN;
}

/* an error of c's, a request's result in `target`'s row (-1: the totals only) */
static void count_error_in(core *k, const conn *c, int32_t target, int error) {
    int i = (error > 0 && error < 256) || (error >= E_CONNECT_TIMEOUT && error < N_ERRORS) ? error : E_OTHER_ERRNO;
    k->stats[S_ERRORS + i]++;
    int64_t *row = group_row_of(k, target);
    if (row) row[G_ERRORS + i]++;
    if (k->stats[S_FIRST_CONN + i] == 0) {
        uint32_t number = c && c->number ? c->number : k->attempts;
        k->stats[S_FIRST_CONN + i] = number ? number : 1;
        k->stats[S_FIRST_NS + i] = now_ns() - k->started_ns;
    }
}

static void count_error(core *k, const conn *c, int error) { count_error_in(k, c, c ? c->target : -1, error); }

/* a response to a request of `target` (-1: none) in its row: status, latency (µs), histogram */
static void group_response(core *k, int32_t target, int status, int64_t latency_ns) {
    int64_t *row = group_row_of(k, target);
    if (!row) return;
    int64_t us = latency_ns / 1000;
    row[G_REQUESTS]++;
    row[G_STATUS + (status >= 0 && status < N_STATUS ? status : 0)]++;
    row[G_SUM_LATENCY] += us;
    if (us < 1) us = 1;
    if (us > H_HIGHEST) us = H_HIGHEST;
    k->ghist[(size_t)k->targets[target].group * H_LEN + (size_t)hist_index(us)]++;
}

static int take(core *k) {
    if (k->stopping) return 0;
    if (k->budget < 0) {
        k->stats[S_TAKEN]++;
        return 1;
    }
    if (k->budget > 0) {
        k->budget--;
        k->stats[S_TAKEN]++;
        return 1;
    }
    return 0;
}

/* A request taken for c was never written and the run ends (stop, abandon, retirement): open loop,
   it was due, so it is not_sent; closed loop, it leaves the ledger (docs/ARCHITECTURE.md "Every
   request one result": a connect that completes after stop carries nothing and counts nothing). */
static void withdraw(core *k, const conn *c) {
    if (k->open_loop) count_error(k, c, E_NOT_SENT);
    else k->stats[S_WITHDRAWN]++;
}

/* ---- HTTP/2 (h2.c): one stream's share of the above ---- */

int core_take(core *k) { return take(k); }
void core_withdraw(core *k, const conn *c) { withdraw(k, c); }
void core_count_error(core *k, const conn *c, int error) { count_error(k, c, error); }
void core_count_stream_error(core *k, const conn *c, int32_t target, int error) {
    count_error_in(k, c, target, error);
}

void core_count_close_error(core *k, const conn *c, int error) {
    count_error(k, c, error);
    k->stats[S_CLOSE_ERRORS]++;
}

void core_response(core *k, int32_t target, int status, int64_t intended, int64_t sent, int64_t now) {
    k->stats[S_REQUESTS]++;
    k->stats[S_STATUS + (status >= 0 && status < N_STATUS ? status : 0)]++;
    record(k, H_LATENCY, S_SUM_LATENCY, now - (intended ? intended : sent));
    group_response(k, target, status, now - (intended ? intended : sent));
    if (intended) record(k, H_SERVICE, S_SUM_SERVICE, now - sent);
}

/* ---- open loop: intended send times ---- */

static uint64_t splitmix64(uint64_t *state);

/* open loop over several destinations: each due request goes to its own destination's lane */
static int lanes(const core *k) { return k->open_loop && k->n_dests > 0; }

/* A request fell due (send time t): its destination is the next of the weights' cycle (or a draw from
   it, --targets-order random), so the mix follows the weights whichever destination is slower; it
   waits in that destination's FIFO. No memory to queue it: not_sent now, its one result. */
static void lane_push(core *k, int64_t t) {
    uint32_t i;
    if (k->order_random) {
        i = (uint32_t)(splitmix64(&k->rng_order) % k->dest_cycle_len);
    } else {
        i = k->dest_cycle_next;
        if (++k->dest_cycle_next == k->dest_cycle_len) k->dest_cycle_next = 0;
    }
    destination *d = &k->dests[k->dest_cycle[i]];
    if (d->due_head > 0 && d->due_head * 2 >= d->due_len) {  /* compact */
        memmove(d->due, d->due + d->due_head, (size_t)(d->due_len - d->due_head) * sizeof(int64_t));
        d->due_len -= d->due_head;
        d->due_head = 0;
    }
    if (d->due_len == d->due_cap) {
        uint32_t cap = d->due_cap ? d->due_cap * 2 : 256;
        int64_t *grown = d->due_cap < (1u << 30) ? realloc(d->due, (size_t)cap * sizeof(int64_t)) : NULL;
        if (!grown) {
            count_error(k, NULL, E_NOT_SENT);
            return;
        }
        d->due = grown;
        d->due_cap = cap;
    }
    d->due[d->due_len++] = t;
}

static void scan_due(core *k, int64_t now) {
    while (k->due_seen < k->due_len && k->due[k->due_seen] <= now) {
        int64_t lag_us = (now - k->due[k->due_seen]) / 1000;
        if (lag_us > k->stats[S_MAX_LAG_US]) k->stats[S_MAX_LAG_US] = lag_us;
        k->due_seen++;
        k->stats[S_TAKEN]++;
    }
    if (lanes(k))  /* each to its destination's lane: the one FIFO holds no overdue request */
        while (k->due_head < k->due_seen) lane_push(k, k->due[k->due_head++]);
}

static int overdue(const core *k) { return k->due_head < k->due_seen; }

static int64_t pop_due(core *k) { return k->due[k->due_head++]; }

static int lane_overdue(const destination *d) { return d->due_head < d->due_len; }

/* a due request for c's destination (its lane's, with several), and taking it */
static int due_for(const core *k, const conn *c) {
    return lanes(k) ? lane_overdue(&k->dests[c->dest]) : overdue(k);
}

static int64_t pop_for(core *k, const conn *c) {
    if (!lanes(k)) return pop_due(k);
    destination *d = &k->dests[c->dest];
    return d->due[d->due_head++];
}

static int lanes_empty(const core *k) {
    if (lanes(k))
        for (int i = 0; i < k->n_dests; i++)
            if (lane_overdue(&k->dests[i])) return 0;
    return 1;
}

int64_t core_next_due(core *k) {
    scan_due(k, now_ns());
    return overdue(k) ? pop_due(k) : 0;
}

/* A due request that no connection took within --timeout of its send time is not_sent now, not at
   the stop: the server has been too slow (or stalled) for longer than any answer would be waited
   for, and without this the queue of intended times grew by the rate every second it lasted (a
   stalled nginx for minutes of a soak: 18 million times, 140 MB). So the queue holds at most
   rate x timeout entries, and so does each destination's lane. */
static void drop_stale_due(core *k, int64_t now) {
    scan_due(k, now);
    while (overdue(k) && now - k->due[k->due_head] > k->timeout_ns) {
        pop_due(k);
        count_error(k, NULL, E_NOT_SENT);
    }
    if (!lanes(k)) return;
    for (int i = 0; i < k->n_dests; i++) {
        destination *d = &k->dests[i];
        while (lane_overdue(d) && now - d->due[d->due_head] > k->timeout_ns) {
            d->due_head++;
            count_error(k, NULL, E_NOT_SENT);
        }
    }
}

int core_add_due(core *k, const int64_t *times, size_t n) {
    drop_stale_due(k, now_ns());
    if (k->due_head > 0 && k->due_head * 2 >= k->due_len) {  /* compact */
        memmove(k->due, k->due + k->due_head, (k->due_len - k->due_head) * sizeof(int64_t));
        k->due_len -= k->due_head;
        k->due_seen -= k->due_head;
        k->due_head = 0;
    }
    if (k->due_len + n > k->due_cap) {
        size_t cap = k->due_cap ? k->due_cap : 1024;
        while (cap < k->due_len + n) cap *= 2;
        int64_t *grown = realloc(k->due, cap * sizeof(int64_t));
        if (!grown) return -ENOMEM;
        k->due = grown;
        k->due_cap = cap;
    }
    memcpy(k->due + k->due_len, times, n * sizeof(int64_t));
    k->due_len += n;
    return 0;
}

/* ---- setup ---- */

/* The request head has an Upgrade field (RFC 9110 section 7.8): then a 101 is the answer it asked for. */
static int asks_upgrade(const char *req, size_t len) {
    static const char name[] = "\r\nupgrade:";
    const size_t n = sizeof name - 1;
    for (size_t i = 0; i + n <= len; i++) {
        if (req[i] == '\r' && i + 3 < len && req[i + 1] == '\n' && req[i + 2] == '\r' && req[i + 3] == '\n')
            return 0;  /* the end of the head: the body is not looked at */
        size_t j = 0;
        while (j < n && (req[i + j] | (j > 1 ? 0x20 : 0)) == name[j]) j++;
        if (j == n) return 1;
    }
    return 0;
}

int core_init(core *k, int capacity) {
    k->capacity = capacity;
    if (!k->n_targets) {  /* a request set: each target says (core_targets_init) */
        k->asks_upgrade = asks_upgrade(k->request, k->request_len);
        k->max_request_len = k->request_len > k->last_request_len ? k->request_len : k->last_request_len;
    }
    k->conns = calloc((size_t)capacity, sizeof(conn));
    k->idle = calloc((size_t)capacity, sizeof(int));
    k->free_slots = calloc((size_t)capacity, sizeof(int));
    k->rbuf_len = READ_BUFFER;
    k->rbuf = malloc(k->rbuf_len);
    if (k->conns)  /* before any failure: core_fini closes only fds >= 0 (calloc's 0 is stdin) */
        for (int i = 0; i < capacity; i++) k->conns[i].fd = -1;
    if (!k->conns || !k->idle || !k->free_slots || !k->rbuf) return -ENOMEM;
    for (int i = 0; i < capacity; i++) {
        k->conns[i].next_backoff = -1;
        k->conns[i].target = -1;
        k->free_slots[i] = capacity - 1 - i;  /* slot 0 on top */
    }
    k->n_free = capacity;
    k->backoff_head = k->backoff_tail = -1;
    return k->io->init(k);
}

void core_fini(core *k) {
    if (k->conns && k->io_state) {  /* no I/O state: the backend never started, opened nothing */
        for (int i = 0; i < k->capacity; i++)
            if (k->conns[i].fd >= 0) {
                k->io->close(k, &k->conns[i]);
                k->conns[i].fd = -1;
            }
    }
    if (k->io_state) k->io->fini(k);
    free(k->conns);
    free(k->idle);
    free(k->free_slots);
    free(k->rbuf);
    free(k->due);
    free(k->sources);
    free(k->source_lens);
    free(k->request);
    free(k->last_request);
    core_targets_fini(k);
    k->conns = NULL;
}

/* ---- backoff list (FIFO through conn.next_backoff) ---- */

static void backoff_push(core *k, conn *c) {
    int i = slot_of(k, c);
    c->next_backoff = -1;
    c->flags |= F_IN_BACKOFF;
    if (k->backoff_tail >= 0) k->conns[k->backoff_tail].next_backoff = i;
    else k->backoff_head = i;
    k->backoff_tail = i;
}

static void backoff_remove(core *k, int prev, conn *c) {
    int next = c->next_backoff;
    if (prev >= 0) k->conns[prev].next_backoff = next;
    else k->backoff_head = next;
    if (k->backoff_tail == slot_of(k, c)) k->backoff_tail = prev;
    c->next_backoff = -1;
    c->flags &= (uint16_t)~F_IN_BACKOFF;
}

/* ---- slots ---- */

static void start_slot(core *k, conn *c);
static void start_connect(core *k, conn *c);
static void socket_ready(core *k, conn *c);
static void open_or_queue(core *k, conn *c);
static void grow_pool(core *k);
static void next_request(core *k, conn *c);
static void unsolicited_unsent(core *k, conn *c);

/* forget the connection: its fd closed, its counts of connecting / in flight undone */
static void drop(core *k, conn *c) {
    if (k->h2) k->h2->drop(k, c);  /* HTTP/2: its session and its unsettled streams */
    if (c->state == C_CONNECTING) k->n_connecting--;
    if (c->flags & F_IN_FLIGHT) k->in_flight--;
    if (c->fd >= 0) {
        k->io->close(k, c);
        c->fd = -1;
        k->n_fd--;
    } else if (c->flags & F_SOCKET_PENDING) {
        k->n_fd--;  /* the backend closes the socket when it arrives: its completion is stale (gen) */
    }
    c->gen++;
    c->flags &= (F_RETIRED | F_IN_IDLE | F_IN_BACKOFF);  /* F_READ_ANY too goes: a new connection */
    if (!c->chosen) c->target = -1;  /* a chosen target not yet begun waits for the slot's next connection */
    c->state = C_FREE;
    c->intended = 0;
}

static void free_slot(core *k, conn *c) {
    c->state = C_FREE;
    if (c->render_sends) {  /* its render buffer is still the kernel's: free once it is not (core_render_free) */
        c->render_wait = 2;
        return;
    }
    if (lanes(k)) {
        destination *d = &k->dests[c->dest];
        d->free_slots[d->n_free++] = slot_of(k, c);
    } else {
        k->free_slots[k->n_free++] = slot_of(k, c);
    }
}

/* closed loop: a slot with its request taken connects now, or in a later turn */
static void open_or_queue(core *k, conn *c) {
    if (k->opens_left > 0) {
        k->opens_left--;
        core_open(k, c);
    } else {
        c->state = C_BACKOFF;
        c->t_retry = 0;
        backoff_push(k, c);
    }
}

static void retry(core *k, conn *c) {
    c->state = C_FREE;
    if (k->open_loop) {
        free_slot(k, c);
        grow_pool(k);
    } else if (c->flags & F_HAS_REQUEST) {
        open_or_queue(k, c);  /* queued by open_or_queue: its request is taken already */
    } else {
        start_slot(k, c);
    }
}

/* the slot of a closed connection goes on: its next connection, or a freed place */
static void slot_after(core *k, conn *c) {
    if (k->open_loop) {
        free_slot(k, c);
        grow_pool(k);
    } else if (c->flags & F_RETIRED) {
        c->flags &= (uint16_t)~F_RETIRED;
        /* The slot ended with its connection, so its port may be free: the slot waiting longest
           after a failed connect (EADDRNOTAVAIL) tries now rather than at the end of its wait.
           A slot that reconnects takes its own freed port, so it wakes nobody. */
        if (k->backoff_head >= 0 && !k->stopping) {
            conn *waiting = &k->conns[k->backoff_head];
            backoff_remove(k, -1, waiting);
            retry(k, waiting);
        }
    } else {
        start_slot(k, c);
    }
}

void core_close(core *k, conn *c) {
    drop(k, c);
    slot_after(k, c);
}

void core_open(core *k, conn *c) {
    if (c->render_sends) {
        /* A send from this slot's render buffer is still in the kernel (io_uring: a connection closed
           while it was written, e.g. at its timeout; until its completion the kernel may read the
           buffer), and this connection's request would be rendered into that buffer: the slot waits
           on the backoff list, without a time, until core_render_free. */
        c->render_wait = 1;
        c->state = C_BACKOFF;
        c->t_retry = INT64_MAX;
        backoff_push(k, c);
        return;
    }
    int64_t now = now_ns();
    k->attempts++;
    c->number = k->attempts;
    c->t_start = now;
    c->sent = c->completed = c->woff = 0;
    c->flags &= (F_RETIRED | F_IN_IDLE | F_HAS_REQUEST);
    if (k->io->socket && k->io->socket(k, c) == 0) {
        /* made by the backend (io_uring: IORING_OP_SOCKET; epoll: at the end of the turn, after its
           closes, so a slot's next socket never needs a file beside its last); core_socket_made
           follows */
        c->flags |= F_SOCKET_PENDING;
        c->state = C_CONNECTING;
        k->n_fd++;
        k->n_connecting++;
        return;
    }
    int fd = core_socket(k, c);
    if (fd < 0) {
        core_connect_failed(k, c, -fd);
        return;
    }
    c->fd = fd;
    c->state = C_CONNECTING;
    k->n_fd++;
    k->n_connecting++;
    socket_ready(k, c);
}

/* c has its socket: bound to the next --source address if there are any, then connected */
static void socket_ready(core *k, conn *c) {
    if (k->n_sources) {
        /* The port is still chosen at connect() per 4-tuple
           (net/ipv4/inet_hashtables.c: __inet_hash_connect): each address brings a whole range. */
        int one = 1;
        int i = k->next_source;
        k->next_source = (k->next_source + 1) % k->n_sources;
        setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        if (bind(c->fd, (struct sockaddr *)&k->sources[i], k->source_lens[i]) < 0) {
            core_connect_failed(k, c, errno);
            return;
        }
    }
    start_connect(k, c);
}

const struct sockaddr *core_address(const core *k, const conn *c, socklen_t *len) {
    if (k->n_dests) {
        const destination *d = &k->dests[c->dest];
        *len = d->addr_len;
        return (const struct sockaddr *)&d->addr;
    }
    *len = k->target_len;
    return (const struct sockaddr *)&k->target;
}

int core_socket(const core *k, const conn *c) {
    socklen_t len;
    int fd = socket(core_address(k, c, &len)->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
    return fd < 0 ? -errno : fd;
}

/* The backend made c's socket: fd, or -errno. */
void core_socket_made(core *k, conn *c, int res) {
    c->flags &= (uint16_t)~F_SOCKET_PENDING;
    if (res < 0) {
        k->n_fd--;  /* counted while pending; drop() finds no fd to close */
        core_connect_failed(k, c, -res);
        return;
    }
    c->fd = res;
    socket_ready(k, c);
}

/* TCP_NODELAY is not set on every connection: it costs a syscall and changes nothing while a
   request goes out in one write. Nagle holds back only a segment smaller than the MSS while data
   sent earlier is unacknowledged, and Linux's variant only while an earlier SMALL segment is
   (net/ipv4/tcp_output.c, Linux 6.x: tcp_nagle_test -> tcp_nagle_check(partial, ...) ->
   tcp_minshall_check(tp): after(tp->snd_sml, tp->snd_una)). A request written by one send() is cut
   into full segments plus one tail, and on a kept-alive connection the previous request was
   acknowledged by its response; so only after a SHORT write can the remainder's tail wait for an
   ACK (up to a delayed ACK, 40 ms). The backends call this at the first short write; turning
   TCP_NODELAY on also pushes what is queued (net/ipv4/tcp.c: __tcp_sock_set_nodelay ->
   tcp_push_pending_frames). */
void core_nodelay(conn *c) {
    if (c->flags & F_NODELAY) return;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->flags |= F_NODELAY;
}

/* c's socket exists: its options, then the backend's connect */
static void start_connect(core *k, conn *c) {
    if (k->close_mode == CLOSE_RST && !(k->io->sets_linger && k->io->sets_linger(k))) {
        /* l_onoff=1, l_linger=0: close() sends RST, no TIME_WAIT on either side
           (net/ipv4/tcp.c: __tcp_close, the sk_lingertime == 0 branch) */
        struct linger lg = {1, 0};
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    t1_init(&c->parser, k->head_request, k->max_head);
    int r = k->io->open(k, c);
    if (r < 0) core_connect_failed(k, c, -r);
}

static void start_slot(core *k, conn *c) {
    if (k->retire > 0 && !k->stopping) {
        k->retire--;
        k->live_slots--;
        c->state = C_FREE;
        return;
    }
    if (!(k->h2 && k->h2->take_owed(k, c)) && !take(k)) {  /* HTTP/2: a refused request first */
        k->live_slots--;
        c->state = C_FREE;
        return;
    }
    c->intended = 0;
    c->flags |= F_HAS_REQUEST;
    open_or_queue(k, c);
}

/* open loop: more connections while requests wait for one, at most MAX_CONNECTING connects at
   once (each connect costs far more than a request: opening one per waiting request would turn
   a short hiccup into a storm of connects) */
static void grow_pool(core *k) {
    if (!k->open_loop || k->stopping) return;
    scan_due(k, now_ns());
    if (lanes(k)) {  /* each destination's waiting requests, on its own unused slots; the first turns */
        for (int j = 0; j < k->n_dests && k->n_connecting < MAX_CONNECTING; j++) {
            destination *d = &k->dests[(k->lane_turn + (uint32_t)j) % (uint32_t)k->n_dests];
            while (lane_overdue(d) && k->n_connecting < MAX_CONNECTING && d->n_free > 0) {
                conn *c = &k->conns[d->free_slots[--d->n_free]];
                c->intended = d->due[d->due_head++];
                c->flags |= F_HAS_REQUEST;
                core_open(k, c);
            }
        }
        k->lane_turn++;  /* MAX_CONNECTING shared: no destination always first */
        return;
    }
    while (overdue(k) && k->n_connecting < MAX_CONNECTING && k->n_free > 0) {
        conn *c = &k->conns[k->free_slots[--k->n_free]];
        c->intended = pop_due(k);  /* written as soon as the connect allows */
        c->flags |= F_HAS_REQUEST;
        core_open(k, c);
    }
}

void core_connect_failed(core *k, conn *c, int err) {
    if (k->n_targets) {  /* the error is the result of the request this connect was to carry: its target's */
        if (!(c->flags & F_HAS_REQUEST)) c->target = -1;
        else if (!c->chosen) core_choose(k, c);
    }
    count_error(k, c, err);
    c->chosen = 0;
    /* Open loop: the request that waited for this connection has this error as its result. */
    int had_request = (c->flags & F_HAS_REQUEST) && c->intended;
    drop(k, c);
    c->flags &= (uint16_t)~F_HAS_REQUEST;
    if (k->open_loop && !had_request && due_for(k, c)) pop_for(k, c);
    if (k->stopping) {
        if (k->open_loop) free_slot(k, c);
        else k->live_slots--;
        return;
    }
    /* Back off, so a refusing target or the port wall does not spin a core: 1, 2, 4 ... ms, at
       most BACKOFF_MAX_MS, growing with the slot's failed connects in a row (open loop: the
       worker's); a successful connect starts it afresh. Per slot: with more slots than ports, the
       slots holding a port keep succeeding, and a worker-wide wait reset by them would let the
       others retry every millisecond (measured: ~900 EADDRNOTAVAIL/s with 5 slots too many). */
    uint8_t *exp = k->open_loop ? &k->backoff_exp_open : &c->backoff_exp;
    int64_t wait_ms = 1LL << *exp;
    if (wait_ms >= BACKOFF_MAX_MS) wait_ms = BACKOFF_MAX_MS;
    else (*exp)++;
    c->t_retry = now_ns() + wait_ms * 1000000LL;
    c->state = C_BACKOFF;
    backoff_push(k, c);
}

/* Connected. Returns 1 when the backend should write c's request now. */
int core_connected(core *k, conn *c, int64_t now) {
    k->n_connecting--;
    c->state = C_READING;
    c->backoff_exp = 0;
    k->backoff_exp_open = 0;
    k->stats[S_OPENED]++;
    if (k->n_dests) k->dests[c->dest].opened++;
    record(k, H_CONNECT, S_SUM_CONNECT, now - c->t_start);
    if (k->stopping && !(c->flags & F_IN_FLIGHT)) {  /* carries nothing yet: closed unused */
        if (c->flags & F_HAS_REQUEST) withdraw(k, c);
        core_close(k, c);
        return 0;
    }
    if (c->flags & F_HAS_REQUEST) return 1;
    c->state = C_IDLE;  /* open loop, nothing assigned: the tick hands it the next due request */
    return 0;
}

/* ---- a request set: targets picked per request, templates filled per request ---- */

/* the most bytes each op renders to: 2^64 - 1 has 20 digits; a uuid is 36 characters; the worker
   index and a Content-Length (at most MAX_RENDER) fit in 10 */
static const uint32_t op_width[N_TPL_OPS] = {
    [TPL_SEQ] = 20, [TPL_RAND] = 20, [TPL_UUID] = 36, [TPL_WORKER] = 10, [TPL_CLEN] = 10,
};

/* splitmix64 (Steele, Lea, Flood 2014): a 64-bit state, one multiply-xorshift per value */
static uint64_t splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

int core_targets_init(core *k) {
    uint64_t cap = 0;
    if (k->n_targets < 1 || k->order_len < 1 || k->n_groups < 1 || k->n_groups > MAX_GROUPS) return -EINVAL;
    for (int i = 0; i < k->n_targets; i++) {
        req_target *t = &k->targets[i];
        uint64_t head = 0, body = 0;
        if (t->group < 0 || t->group >= k->n_groups || t->body_start > t->n_ops) return -EINVAL;
        for (uint32_t j = 0; j < t->n_ops; j++) {
            const tpl_op *op = &t->ops[j];
            if (op->kind >= N_TPL_OPS || (op->kind == TPL_RAND && op->arg == 0)) return -EINVAL;
            uint64_t w = op->kind == TPL_LIT || op->kind == TPL_LAST_LIT ? op->len : op_width[op->kind];
            if (op->kind == TPL_SEQ) t->uses_seq = 1;
            if (j < t->body_start) head += w;
            else body += w;
        }
        if (head + body > MAX_RENDER) return -E2BIG;
        t->head_max = (uint32_t)head;
        t->body_max = (uint32_t)body;
        uint64_t longest = t->n_ops ? head + body : (t->plain_len > t->last_len ? t->plain_len : t->last_len);
        if (t->n_ops && longest > cap) cap = longest;
        if (longest > k->max_request_len) k->max_request_len = (uint32_t)longest;
    }
    for (uint32_t i = 0; i < k->order_len; i++)
        if (k->order[i] < 0 || k->order[i] >= k->n_targets) return -EINVAL;
    if (k->n_dests) {
        /* each destination's part of the order: inside it, non-empty, and only its own targets */
        for (int d = 0; d < k->n_dests; d++) {
            destination *dst = &k->dests[d];
            if (dst->order_len < 1 || dst->order_start > k->order_len || dst->order_len > k->order_len - dst->order_start)
                return -EINVAL;
            for (uint32_t i = dst->order_start; i < dst->order_start + dst->order_len; i++)
                if (k->targets[k->order[i]].dest != d) return -EINVAL;
            dst->order_next = k->worker % dst->order_len;
        }
    } else {
        for (int i = 0; i < k->n_targets; i++)
            if (k->targets[i].dest != 0) return -EINVAL;
    }
    if (cap && !k->h2) {  /* HTTP/2 renders each stream's request itself (h2.c), not in a slot's buffer */
        if (cap * (uint64_t)k->capacity > MAX_RENDER_TOTAL) return -ENOBUFS;
        k->render = malloc((size_t)cap * (size_t)k->capacity);
        if (!k->render) return -ENOMEM;
        k->render_cap = (uint32_t)cap;
    }
    k->gstats = calloc((size_t)k->n_groups * G_LEN, sizeof(int64_t));
    k->ghist = calloc((size_t)k->n_groups * H_LEN, sizeof(int64_t));
    k->gtouched = calloc((size_t)k->n_groups, 1);
    if (!k->gstats || !k->ghist || !k->gtouched) return -ENOMEM;
    k->order_next = k->worker % k->order_len;  /* the workers start apart in the cycle */
    return 0;
}

/* Open loop over several destinations: each destination's lane, once the slots' destinations are set
   (its unused slots, slot 0 on top as the one pool's). Every destination needs a slot of this worker's,
   or its requests would only wait (engine/request_set.py gives each one at least). */
int core_lanes_init(core *k) {
    if (!lanes(k)) return 0;
    if (!k->dest_cycle || !k->dest_cycle_len) return -EINVAL;
    for (uint32_t i = 0; i < k->dest_cycle_len; i++)
        if (k->dest_cycle[i] >= k->n_dests) return -EINVAL;
    for (int i = 0; i < k->capacity; i++) k->dests[k->conns[i].dest].n_slots++;
    for (int j = 0; j < k->n_dests; j++) {
        destination *d = &k->dests[j];
        if (d->n_slots < 1) return -EINVAL;
        d->idle = calloc((size_t)d->n_slots, sizeof(int));
        d->free_slots = calloc((size_t)d->n_slots, sizeof(int));
        if (!d->idle || !d->free_slots) return -ENOMEM;
    }
    for (int i = k->capacity - 1; i >= 0; i--) {
        destination *d = &k->dests[k->conns[i].dest];
        d->free_slots[d->n_free++] = i;
    }
    k->dest_cycle_next = k->worker % k->dest_cycle_len;  /* the workers start apart in the cycle */
    return 0;
}

/* ---- a streamed request set: the spool's records a page at a time ---- */

/* One spool record (engine/spool.py, native byte order) into t, after its length: u16 group,
   u16 weight, u8 head, u8 upgrade, u8 templated, u8 0, u32 a, u32 b; then, not templated, a bytes of
   the request and b of its last-on-the-connection form; templated, a ops of 16 bytes (u8 kind, 3 x 0,
   u32 literal length, u64 arg) with body_start b, then the ops' literals one after the other. Every
   length is checked against the record's: 0, -EINVAL, -E2BIG (over render_max), -ENOMEM. */
static int spool_target(core *k, req_target *t, const char *d, uint32_t len) {
    uint16_t group, weight;
    uint32_t a, b;
    if (len < 16) return -EINVAL;
    memcpy(&group, d, 2);
    memcpy(&weight, d + 2, 2);
    memcpy(&a, d + 8, 4);
    memcpy(&b, d + 12, 4);
    const char *rest = d + 16;
    uint32_t left = len - 16;
    if (group >= k->n_groups || weight < 1) return -EINVAL;
    t->group = group;
    t->weight = weight;
    t->head = d[4] != 0;
    t->asks_upgrade = d[5] != 0;
    if (!d[6]) {  /* not templated: its bytes, as they go out */
        if ((uint64_t)a + b != left) return -EINVAL;
        t->plain = malloc(a ? a : 1);
        t->last = malloc(b ? b : 1);
        if (!t->plain || !t->last) return -ENOMEM;
        memcpy(t->plain, rest, a);
        memcpy(t->last, rest + a, b);
        t->plain_len = a;
        t->last_len = b;
        return 0;
    }
    if (a == 0 || a > left / 16 || b > a) return -EINVAL;
    uint32_t lits = left - a * 16;
    t->ops = calloc(a, sizeof *t->ops);
    t->pool = malloc(lits ? lits : 1);
    if (!t->ops || !t->pool) return -ENOMEM;
    memcpy(t->pool, rest + (size_t)a * 16, lits);
    uint64_t at = 0, head = 0, body = 0;
    for (uint32_t j = 0; j < a; j++) {
        const char *o = rest + (size_t)j * 16;
        uint8_t kind = (uint8_t)o[0];
        uint32_t olen;
        uint64_t arg;
        memcpy(&olen, o + 4, 4);
        memcpy(&arg, o + 8, 8);
        if (kind >= N_TPL_OPS || (kind == TPL_RAND && arg == 0) || olen > lits - at) return -EINVAL;
        t->ops[j] = (tpl_op){.kind = kind, .len = olen, .arg = arg, .data = t->pool + at};
        at += olen;
        uint64_t w = kind == TPL_LIT || kind == TPL_LAST_LIT ? olen : op_width[kind];
        if (kind == TPL_SEQ) t->uses_seq = 1;
        if (j < b) head += w;
        else body += w;
    }
    if (at != lits) return -EINVAL;
    if (head + body > k->render_max) return -E2BIG;
    t->n_ops = a;
    t->body_start = b;
    t->head_max = (uint32_t)head;
    t->body_max = (uint32_t)body;
    return 0;
}

/* spool bytes [off, off + len) into k->spool_buf (grown to len); 0 or -errno (-EIO: the file is shorter) */
static int spool_read(core *k, uint64_t off, size_t len) {
    if (len > k->spool_buf_cap) {
        char *grown = realloc(k->spool_buf, len);
        if (!grown) return -ENOMEM;
        k->spool_buf = grown;
        k->spool_buf_cap = len;
    }
    for (size_t got = 0; got < len;) {
        ssize_t r = pread(k->spool_fd, k->spool_buf + got, len - got, (off_t)(off + got));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return -errno;
        if (r == 0) return -EIO;
        got += (size_t)r;
    }
    return 0;
}

static void free_target(req_target *t) {
    free(t->plain);
    free(t->last);
    free(t->ops);
    free(t->pool);
    memset(t, 0, sizeof *t);
}

/* page p (targets [p * page_cap, + page_cap)) filled with the spool's next records, at most page_cap,
   up to the file's end (the next page starts it over) */
static int spool_page(core *k, int p) {
    req_target *page = &k->targets[(size_t)p * k->page_cap];
    for (uint32_t i = 0; i < k->page_cap; i++) free_target(&page[i]);
    k->page_n[p] = 0;
    uint64_t off = k->spool_off, buf_off = 0, buf_len = 0;  /* k->spool_buf holds [buf_off, buf_off + buf_len) */
    uint32_t n = 0;
    uint64_t start = off;
    while (n < k->page_cap && off < k->spool_len && off - start < PAGE_BYTES) {
        uint64_t room = k->spool_len - off;
        if (off < buf_off || off + 4 > buf_off + buf_len) {
            buf_len = room < SPOOL_CHUNK ? room : SPOOL_CHUNK;
            int r = spool_read(k, off, (size_t)buf_len);
            if (r < 0) return r;
            buf_off = off;
        }
        uint32_t rlen;
        memcpy(&rlen, k->spool_buf + (off - buf_off), 4);
        if (rlen > room - 4) return -EINVAL;
        if (off + 4 + rlen > buf_off + buf_len) {  /* past what was read: from the record on, all of it */
            buf_len = 4 + (uint64_t)rlen > SPOOL_CHUNK ? 4 + (uint64_t)rlen : (room < SPOOL_CHUNK ? room : SPOOL_CHUNK);
            int r = spool_read(k, off, (size_t)buf_len);
            if (r < 0) return r;
            buf_off = off;
        }
        int r = spool_target(k, &page[n], k->spool_buf + (off - buf_off) + 4, rlen);
        if (r < 0) return r;
        off += 4 + (uint64_t)rlen;
        n++;
    }
    k->spool_off = off >= k->spool_len ? 0 : off;  /* the file walked to its end: it starts over */
    k->page_n[p] = n;
    k->page_ready[p] = n > 0;
    return n > 0 ? 0 : -EINVAL;
}

int core_spool_init(core *k) {
    if (k->page_cap < 1 || k->page_cap > (1u << 24) || k->spool_len < 20 || k->n_groups < 1 ||
        k->n_groups > MAX_GROUPS || k->render_max > MAX_RENDER)
        return -EINVAL;
    k->targets = calloc(2 * (size_t)k->page_cap, sizeof *k->targets);
    if (!k->targets) return -ENOMEM;
    k->n_targets = (int)(2 * k->page_cap);
    if (k->render_max) {
        if ((uint64_t)k->render_max * (uint64_t)k->capacity > MAX_RENDER_TOTAL) return -ENOBUFS;
        k->render = malloc((size_t)k->render_max * (size_t)k->capacity);
        if (!k->render) return -ENOMEM;
        k->render_cap = k->render_max;
    }
    k->gstats = calloc((size_t)k->n_groups * G_LEN, sizeof(int64_t));
    k->ghist = calloc((size_t)k->n_groups * H_LEN, sizeof(int64_t));
    k->gtouched = calloc((size_t)k->n_groups, 1);
    if (!k->gstats || !k->ghist || !k->gtouched) return -ENOMEM;
    int r = spool_page(k, 0);
    if (r == 0) r = spool_page(k, 1);
    if (r < 0) return r;
    k->page_cur = 0;
    k->page_pos = k->worker % k->page_n[0];  /* the workers start apart in the first page */
    return 0;
}

/* The page not being walked, once spent, loaded with the next records when no slot holds one of its
   targets (a chosen one not yet begun, or one in flight: its bytes may still be written); an answered
   request's slot forgets its target index (it would name another target's group). Looked at every
   REFILL_NS at most: the walk over the slots is the cost. A read error stops the refills (the worker
   reports it, core.spool_error); the page walked meanwhile is walked again. */
void core_spool_refill(core *k, int64_t now) {
    int p = 1 - k->page_cur;
    if (k->page_ready[p] || k->spool_error || now < k->next_refill) return;
    k->next_refill = now + REFILL_NS;
    int32_t lo = (int32_t)((uint32_t)p * k->page_cap), hi = lo + (int32_t)k->page_cap;
    for (int i = 0; i < k->capacity; i++) {
        const conn *c = &k->conns[i];
        if (c->target >= lo && c->target < hi && (c->chosen || (c->flags & F_IN_FLIGHT))) return;
    }
    for (int i = 0; i < k->capacity; i++)
        if (k->conns[i].target >= lo && k->conns[i].target < hi) k->conns[i].target = -1;
    int r = spool_page(k, p);
    if (r < 0) k->spool_error = -r;
}

void core_targets_fini(core *k) {
    for (int i = 0; i < k->n_targets; i++) {
        free(k->targets[i].plain);
        free(k->targets[i].last);
        free(k->targets[i].ops);
        free(k->targets[i].pool);
    }
    free(k->targets);
    free(k->order);
    for (int d = 0; d < k->n_dests && k->dests; d++) {
        free(k->dests[d].due);
        free(k->dests[d].idle);
        free(k->dests[d].free_slots);
    }
    free(k->dests);
    free(k->dest_cycle);
    k->dests = NULL;
    k->dest_cycle = NULL;
    k->n_dests = 0;
    free(k->render);
    free(k->spool_buf);
    k->spool_buf = NULL;
    if (k->paged && k->spool_fd >= 0) close(k->spool_fd);
    k->paged = 0;
    free(k->gstats);
    free(k->ghist);
    free(k->gtouched);
    k->targets = NULL;
    k->n_targets = 0;
    k->order = NULL;
    k->render = NULL;
    k->gstats = k->ghist = NULL;
    k->gtouched = NULL;
}

int core_rendered(const core *k, const char *req) {
    return k->render && req >= k->render && req < k->render + (size_t)k->render_cap * (size_t)k->capacity;
}

/* io_uring: the last send from c's render buffer completed (c->render_sends is 0): a slot that waited
   for it connects at the next tick, or goes back among the free ones (open loop) */
void core_render_free(core *k, conn *c) {
    uint8_t wait = c->render_wait;
    c->render_wait = 0;
    if (wait == 1 && (c->flags & F_IN_BACKOFF) && c->t_retry == INT64_MAX) {
        c->t_retry = 0;
    } else if (wait == 2 && c->state == C_FREE) {
        free_slot(k, c);
        grow_pool(k);
    }
}

/* the next request's target: round-robin through the order's cycle, or a draw from it */
void core_choose(core *k, conn *c) {
    uint32_t i;
    if (k->paged) {  /* a streamed set: the page in turn, each target weight times in a row */
        int p = k->page_cur;
        c->target = (int32_t)((uint32_t)p * k->page_cap + k->page_pos);
        c->chosen = 1;
        c->rendered = 0;
        if (++k->page_rep < k->targets[c->target].weight) return;
        k->page_rep = 0;
        if (++k->page_pos < k->page_n[p]) return;
        k->page_pos = 0;
        if (k->page_ready[1 - p]) {  /* on to the next page; this one is spent, loaded anew once free */
            k->page_ready[p] = 0;
            k->page_cur = 1 - p;
        } else {
            k->page_repeats++;  /* the next page is not loaded yet: this one again */
        }
        return;
    }
    if (k->n_dests) {  /* the slot's destination's own part of the cycle */
        destination *d = &k->dests[c->dest];
        if (k->order_random) {
            i = d->order_start + (uint32_t)(splitmix64(&k->rng_order) % d->order_len);
        } else {
            i = d->order_start + d->order_next;
            if (++d->order_next == d->order_len) d->order_next = 0;
        }
    } else if (k->order_random) {
        i = (uint32_t)(splitmix64(&k->rng_order) % k->order_len);
    } else {
        i = k->order_next;
        if (++k->order_next == k->order_len) k->order_next = 0;
    }
    c->target = k->order[i];
    c->chosen = 1;
    c->rendered = 0;
}

static char *put_decimal(char *p, uint64_t v) {
    char digits[20];
    int n = 0;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n) *p++ = digits[--n];
    return p;
}

/* a random (version 4, RFC 9562 section 5.4) UUID, 36 characters */
static char *put_uuid(core *k, char *p) {
    static const char hex[] = "0123456789abcdef";
    uint64_t half[2] = {splitmix64(&k->rng_values), splitmix64(&k->rng_values)};
    half[0] = (half[0] & ~(0xf0ULL << 8)) | (0x40ULL << 8);     /* octet 6: version 4 */
    half[1] = (half[1] & ~(0xc0ULL << 56)) | (0x80ULL << 56);   /* octet 8: variant 10 */
    for (int i = 0; i < 32; i++) {
        if (i == 8 || i == 12 || i == 16 || i == 20) *p++ = '-';
        *p++ = hex[(half[i / 16] >> (60 - 4 * (i % 16))) & 0xf];
    }
    return p;
}

/* ops [from, to) of t into out (bounded by t->head_max or t->body_max: core_targets_init summed
   their widths); returns the bytes written */
static uint32_t render_ops(core *k, const req_target *t, uint32_t from, uint32_t to, char *out, int last,
                           uint64_t seq, uint32_t body_len) {
    char *p = out;
    for (uint32_t j = from; j < to; j++) {
        const tpl_op *op = &t->ops[j];
        switch (op->kind) {
        case TPL_LIT:
        case TPL_LAST_LIT:
            if (op->kind == TPL_LAST_LIT && !last) break;
            memcpy(p, op->data, op->len);
            p += op->len;
            break;
        case TPL_SEQ: p = put_decimal(p, seq); break;
        case TPL_RAND: p = put_decimal(p, splitmix64(&k->rng_values) % op->arg); break;
        case TPL_UUID: p = put_uuid(k, p); break;
        case TPL_WORKER: p = put_decimal(p, k->worker); break;
        case TPL_CLEN: p = put_decimal(p, body_len); break;
        default: break;
        }
    }
    return (uint32_t)(p - out);
}

/* c's templated request into its slot's buffer: the body first, past the head's bound, so the
   head's Content-Length can say its length; then the body moves up behind the head */
static void render(core *k, conn *c, const req_target *t, int last) {
    char *buf = k->render + (size_t)slot_of(k, c) * k->render_cap;
    uint64_t seq = t->uses_seq ? k->seq_next++ * k->workers + k->worker : 0;
    uint32_t body = render_ops(k, t, t->body_start, t->n_ops, buf + t->head_max, last, seq, 0);
    uint32_t head = render_ops(k, t, 0, t->body_start, buf, last, seq, body);
    memmove(buf + head, buf + t->head_max, body);
    c->rendered_len = head + body;
    c->rendered = 1;
    c->rendered_last = (uint8_t)last;
}

/* (body NULL: the body is not rendered, and *body_len says its length for the head's Content-Length) */
void core_render_parts(core *k, const req_target *t, char *head, uint32_t *head_len, char *body, uint32_t *body_len) {
    uint64_t seq = t->uses_seq ? k->seq_next++ * k->workers + k->worker : 0;
    if (body) *body_len = render_ops(k, t, t->body_start, t->n_ops, body, 0, seq, 0);
    *head_len = render_ops(k, t, 0, t->body_start, head, 0, seq, *body_len);
}

static const char *target_request(core *k, conn *c, int last, uint32_t *len) {
    if (!(c->flags & F_IN_FLIGHT)) {
        if (!c->chosen) core_choose(k, c);
        /* the parser was set up for this connection before the target was known; no byte of a
           response is fed before the request goes out */
        c->parser.head_request = k->targets[c->target].head;
    }
    const req_target *t = &k->targets[c->target];
    if (!t->n_ops) {
        *len = last ? t->last_len : t->plain_len;
        return last ? t->last : t->plain;
    }
    /* rendered once a request: again only when it moved to a connection where it is (or is no
       longer) the last one (the Connection: close line) */
    if (!(c->flags & F_IN_FLIGHT) && (!c->rendered || c->rendered_last != last)) render(k, c, t, last);
    *len = c->rendered_len;
    return k->render + (size_t)slot_of(k, c) * k->render_cap;
}

const char *core_request(core *k, conn *c, uint32_t *len) {
    int last = (c->flags & F_IN_FLIGHT) ? (c->flags & F_LAST) != 0
                                        : k->per_connection && c->sent + 1 >= k->per_connection;
    if (k->n_targets) return target_request(k, c, last, len);
    *len = last ? k->last_request_len : k->request_len;
    return last ? k->last_request : k->request;
}

void core_begin(core *k, conn *c, int64_t t) {
    int last = k->per_connection && c->sent + 1 >= k->per_connection;
    c->sent++;
    c->woff = 0;
    c->t_start = t;
    c->chosen = 0;  /* a request set: the target is this request's now (c->target, while in flight) */
    c->flags |= F_IN_FLIGHT;
    c->flags &= (uint16_t)~(F_LAST | F_ASKED_CLOSE);
    if (last) c->flags |= F_LAST;
    if (last && k->close_mode == CLOSE_SERVER) c->flags |= F_ASKED_CLOSE;
    k->in_flight++;
    c->state = C_SENDING;
}

void core_sent(core *k, conn *c, size_t n) {
    uint32_t len;
    core_request(k, c, &len);
    c->woff += (uint32_t)n;
    k->stats[S_BYTES_OUT] += (int64_t)n;
    if (c->woff >= len && c->state == C_SENDING) c->state = C_READING;
}

/* ---- after a response ---- */

/* No more requests on this connection: close it the way the strategy says. */
static void end(core *k, conn *c, int server_keeps_alive, int64_t now) {
    if (k->close_mode == CLOSE_RST || k->close_mode == CLOSE_FIN) {
        core_close(k, c);  /* rst: SO_LINGER {1,0} is set, close() sends RST; fin: TIME_WAIT stays here */
    } else if ((c->flags & F_ASKED_CLOSE) || !server_keeps_alive) {
        /* We asked for Connection: close, or the server announced its close: the server
           closes first, so wait for its FIN before closing ours. Closing as soon as the body
           is complete would race that FIN and leave TIME_WAIT on the client after all. */
        if (c->flags & F_PEER_CLOSED) {
            core_close(k, c);
        } else {
            c->state = C_AWAIT_EOF;
            c->t_start = now;  /* the wait for EOF gets its own timeout */
        }
    } else {
        core_close(k, c);  /* out of requests on a kept-alive connection: the client closes */
    }
}

/* open loop: a connection with nothing in flight gets the oldest overdue request, or waits */
static void ready(core *k, conn *c) {
    c->state = C_IDLE;
    if (k->stopping) {
        core_close(k, c);
        return;
    }
    scan_due(k, now_ns());
    if (due_for(k, c)) {
        c->intended = pop_for(k, c);
        c->flags |= F_HAS_REQUEST;
        next_request(k, c);
        return;
    }
    if (!(c->flags & F_IN_IDLE)) {
        c->flags |= F_IN_IDLE;
        if (lanes(k)) {
            destination *d = &k->dests[c->dest];
            d->idle[d->n_idle++] = slot_of(k, c);
        } else {
            k->idle[k->n_idle++] = slot_of(k, c);
        }
    }
}

static int claim_retirement(core *k, conn *c) {
    if (!k->retire) return 0;
    k->retire--;
    k->live_slots--;
    c->flags |= F_RETIRED;
    return 1;
}

static void next_request(core *k, conn *c) {
    t1_init(&c->parser, k->head_request, k->max_head);
    c->woff = 0;
    c->state = C_SENDING;
    k->io->send(k, c);
}

static void response_done(core *k, conn *c, int surplus) {
    int64_t now = now_ns();
    k->stats[S_REQUESTS]++;
    int status = c->parser.status;
    k->stats[S_STATUS + (status >= 0 && status < N_STATUS ? status : 0)]++;
    /* open loop: from the intended send time (free of coordinated omission); closed: from the send */
    int64_t latency = now - (c->intended ? c->intended : c->t_start);
    record(k, H_LATENCY, S_SUM_LATENCY, latency);
    group_response(k, c->target, status, latency);  /* its target's results */
    if (c->intended) record(k, H_SERVICE, S_SUM_SERVICE, now - c->t_start);
    c->completed++;
    c->intended = 0;
    c->flags &= (uint16_t)~(F_IN_FLIGHT | F_HAS_REQUEST);
    k->in_flight--;
    if (surplus) {  /* bytes after the response that nobody asked for: named, and this connection is done */
        core_close_error(k, c, E_UNSOLICITED);
        return;
    }
    /* answered before the request was all out: do not reuse (io_uring: the send from the render buffer
       has not completed, and the next request would be rendered into the buffer it reads) */
    if (c->state == C_SENDING || c->render_sends) {
        core_close(k, c);
        return;
    }
    int server_keeps_alive = c->parser.keep_alive && !(c->flags & F_PEER_CLOSED);
    int keep = server_keeps_alive && !(c->flags & F_ASKED_CLOSE) &&
               (!k->per_connection || c->completed < k->per_connection);
    if (keep) {
        if (k->open_loop) {
            ready(k, c);
        } else if (claim_retirement(k, c) || !take(k)) {
            end(k, c, 1, now);
        } else {
            c->flags |= F_HAS_REQUEST;
            next_request(k, c);
        }
        return;
    }
    /* HTTP/1.0 with Transfer-Encoding: not to be reused, but the server keeps it open: ours to close */
    if (c->parser.client_closes && !(c->flags & F_PEER_CLOSED)) server_keeps_alive = 1;
    end(k, c, server_keeps_alive, now);
}

/* c's parser has a whole response: its request's answer. After a 101 the server speaks another
   protocol (the parser says keep_alive 0, so the connection closes): what follows it is that
   protocol's, not bytes nobody asked for; and to a request that asked for no Upgrade a 101 answers
   nothing (docs/ARCHITECTURE.md "Server surprises": unexpected_upgrade, the request's result). */
static void answered(core *k, conn *c, int surplus) {
    int upgrade = k->n_targets ? k->targets[c->target].asks_upgrade : k->asks_upgrade;
    if (c->parser.status != 101) response_done(k, c, surplus);
    else if (upgrade) {
        /* the 101 it asked for answers it; the connection now speaks a protocol this client does
           not, and the server will not close it: the client does (not awaiting a FIN) */
        c->parser.client_closes = 1;
        c->flags &= (uint16_t)~F_ASKED_CLOSE;
        response_done(k, c, 0);
    }
    else core_fail(k, c, E_UNEXPECTED_UPGRADE);
}

static int parse_error(int r) {
    return r == T1_ERR_HEAD_TOO_LARGE ? E_HEAD_TOO_LARGE : r == T1_ERR_EOF ? E_EOF_BEFORE_RESPONSE : E_PROTOCOL;
}

int core_received(core *k, conn *c, const char *data, size_t len) {
    if (k->h2) return k->h2->received(k, c, data, len);  /* HTTP/2: the session's bytes */
    uint32_t gen = c->gen;
    k->stats[S_BYTES_IN] += (int64_t)len;
    if (!(c->flags & F_IN_FLIGHT)) {  /* awaiting the server's FIN, idle, or before the request went out */
        if (c->flags & F_HAS_REQUEST) unsolicited_unsent(k, c);
        else core_close_error(k, c, E_UNSOLICITED);
        return 1;
    }
    size_t used = 0;
    int r = t1_feed(&c->parser, data, len, &used);
    if (r == T1_MORE) {
        c->flags |= F_READ_ANY;
        return 0;
    }
    if (r == T1_DONE) {
        answered(k, c, used < len);
    } else {
        if (r == T1_ERR_PROTOCOL && k->peer_len == 0 && !(c->flags & F_READ_ANY)) {
            /* what the peer speaks instead of HTTP: the start of this connection's first read */
            k->peer_len = len < sizeof k->peer_bytes ? (int)len : (int)sizeof k->peer_bytes;
            memcpy(k->peer_bytes, data, (size_t)k->peer_len);
        }
        core_fail(k, c, parse_error(r));
    }
    if (c->gen == gen) c->flags |= F_READ_ANY;
    return c->gen != gen;
}

/* c closes while the request taken for it is not written yet, because the peer closed or reset it
   or sent bytes nobody asked for: epoll, F_HAS_REQUEST without F_IN_FLIGHT (its first send found
   the socket full); io_uring, only bytes read while the request was queued before its submit
   (core_received_unsent: F_IN_FLIGHT is set at queueing, so an EOF or a reset then is the
   request's result, as on epoll once a byte is out). Nothing of the
   request went out, so this connection owes it no answer: in the closed loop it goes out on the
   slot's next connection (as a slot's request waits through a failed connect); at the stop, or in
   the open loop, it leaves as a request dropped before a byte was written does (withdrawn;
   not_sent). Either way it still yields exactly one result. */
void core_close_unsent(core *k, conn *c) {
    if (k->open_loop || k->stopping) {
        withdraw(k, c);
        core_close(k, c);
        return;
    }
    drop(k, c);
    c->flags |= F_HAS_REQUEST;
    retry(k, c);
}

/* Bytes came for c before its request was written: they answer nothing (unsolicited_response,
   outside the ledger), and the connection closes with the request unsent. */
static void unsolicited_unsent(core *k, conn *c) {
    count_error(k, c, E_UNSOLICITED);
    k->stats[S_CLOSE_ERRORS]++;
    core_close_unsent(k, c);
}

/* io_uring: bytes came for c while its request was only queued; the backend has taken the request
   back, so what was counted as written when it was queued is taken back too. */
void core_received_unsent(core *k, conn *c, size_t len) {
    k->stats[S_BYTES_IN] += (int64_t)len;
    k->stats[S_BYTES_OUT] -= c->woff;
    unsolicited_unsent(k, c);
}

void core_peer_closed(core *k, conn *c) {
    c->flags |= F_PEER_CLOSED;
    if (k->h2 && c->state != C_CONNECTING) {  /* HTTP/2: every stream still open gets it */
        k->h2->ended(k, c, 0);
        return;
    }
    if (c->flags & F_IN_FLIGHT) {
        int r = t1_eof(&c->parser);
        if (r == T1_DONE) answered(k, c, 0);  /* a body delimited by the server's close */
        else core_fail(k, c, parse_error(r));
        return;
    }
    if (c->flags & F_HAS_REQUEST) core_close_unsent(k, c);  /* before the request went out */
    else core_close(k, c);  /* awaited EOF, or the server closed an idle connection */
}

/* A read on c failed with err (e.g. ECONNRESET), as both backends see it: the request in flight
   gets it as its result; awaiting the server's FIN after a counted response it is counted apart;
   a request taken but not written yet goes on (core_close_unsent); an idle connection just closes. */
void core_read_failed(core *k, conn *c, int err) {
    if (k->h2 && c->state != C_CONNECTING) k->h2->ended(k, c, err);  /* HTTP/2: every open stream's result */
    else if (c->flags & F_IN_FLIGHT) core_fail(k, c, err);
    else if (c->state == C_AWAIT_EOF) core_close_error(k, c, err);
    else if (c->flags & F_HAS_REQUEST) core_close_unsent(k, c);
    else core_close(k, c);
}

void core_fail(core *k, conn *c, int error) {
    count_error(k, c, error);
    core_close(k, c);
}

/* The response is counted, but what came after it went wrong: --close server, the server's close (it
   reset, or never closed); or the server sent bytes nobody asked for (E_UNSOLICITED: after a
   complete response, on an idle connection, or awaiting its FIN). Counted by name, outside the
   ledger of request results (docs/ARCHITECTURE.md "Every request one result"), and the connection
   closes. */
void core_close_error(core *k, conn *c, int error) {
    count_error(k, c, error);
    k->stats[S_CLOSE_ERRORS]++;
    core_close(k, c);
}

/* ---- timers ---- */

static void sweep(core *k, int64_t now) {
    for (int i = 0; i < k->capacity; i++) {
        conn *c = &k->conns[i];
        switch (c->state) {
        case C_CONNECTING:
            if (now - c->t_start > k->connect_timeout_ns) core_connect_failed(k, c, E_CONNECT_TIMEOUT);
            break;
        case C_SENDING:
        case C_READING:
            if (k->h2) k->h2->sweep(k, c, now);  /* HTTP/2: each stream's own timeout */
            else if (now - c->t_start > k->timeout_ns) core_fail(k, c, E_TIMEOUT);
            break;
        case C_AWAIT_EOF:
            if (now - c->t_start > k->timeout_ns) core_close_error(k, c, E_NO_SERVER_CLOSE);
            break;
        default:
            break;
        }
    }
}

void core_tick(core *k, int64_t now) {
    if (k->paged) core_spool_refill(k, now);
    k->opens_left = OPENS_PER_TURN;
    for (int prev = -1, i = k->backoff_head; i >= 0 && k->opens_left > 0;) {
        conn *c = &k->conns[i];
        int next = c->next_backoff;
        if (c->t_retry <= now) {
            backoff_remove(k, prev, c);
            retry(k, c);
        } else {
            prev = i;
        }
        i = next;
    }
    if (k->open_loop && !k->stopping) {
        scan_due(k, now);
        if (k->h2 && overdue(k)) k->h2->dispatch(k);  /* HTTP/2: to the streams free first */
        while (overdue(k) && k->n_idle > 0) {
            conn *c = &k->conns[k->idle[--k->n_idle]];
            c->flags &= (uint16_t)~F_IN_IDLE;
            if (c->state != C_IDLE) continue;  /* closed since it was parked */
            c->intended = pop_due(k);
            c->flags |= F_HAS_REQUEST;
            next_request(k, c);
        }
        for (int j = 0; lanes(k) && j < k->n_dests; j++) {  /* several destinations: each its own idle ones */
            destination *d = &k->dests[j];
            while (lane_overdue(d) && d->n_idle > 0) {
                conn *c = &k->conns[d->idle[--d->n_idle]];
                c->flags &= (uint16_t)~F_IN_IDLE;
                if (c->state != C_IDLE) continue;
                c->intended = d->due[d->due_head++];
                c->flags |= F_HAS_REQUEST;
                next_request(k, c);
            }
        }
        grow_pool(k);
    }
    if (now >= k->next_sweep) {
        sweep(k, now);
        k->next_sweep = now + SWEEP_NS;
    }
}

int64_t core_next_timer(core *k, int64_t now, int64_t until) {
    int64_t t = until < k->next_sweep ? until : k->next_sweep;
    for (int i = k->backoff_head; i >= 0; i = k->conns[i].next_backoff) {
        if (k->conns[i].t_retry < t) t = k->conns[i].t_retry;
        /* due already (a connect queued by OPENS_PER_TURN has t_retry 0): no need to walk on. During
           a connect storm the list holds tens of thousands of queued slots, and walking all of
           them before every poll took most of the loop's time. */
        if (t <= now) return now;
    }
    if (k->open_loop && !k->stopping && k->due_seen < k->due_len && k->due[k->due_seen] < t)
        t = k->due[k->due_seen];
    return t < now ? now : t;
}

int core_done(core *k) {
    if (k->stopping) return k->n_fd == 0 && k->in_flight == 0;
    if (k->open_loop)
        return k->schedule_done && k->due_head == k->due_len && lanes_empty(k) && k->in_flight == 0 &&
               k->n_connecting == 0;
    return k->live_slots == 0 && !k->staged;
}

int core_run(core *k, int64_t until) {
    for (;;) {
        int64_t now = now_ns();
        core_tick(k, now);
        if (core_done(k) || now >= until) {
            k->io->flush(k);
            return core_done(k);
        }
        int r = k->io->poll(k, until);
        if (r < 0) return r;
    }
}

/* ---- the run's phases ---- */

void core_start(core *k, int64_t started_ns, int connections) {
    k->started_ns = started_ns;
    k->next_sweep = started_ns + SWEEP_NS;
    if (k->open_loop || k->staged) return;
    if (connections > k->capacity) connections = k->capacity;
    k->opens_left = OPENS_PER_TURN;
    k->live_slots = connections;
    for (int i = 0; i < connections; i++) start_slot(k, &k->conns[i]);
}

void core_set_connections(core *k, int target) {
    if (k->open_loop || k->stopping) return;
    if (target > k->capacity) target = k->capacity;
    int current = k->live_slots - k->retire;
    if (target > current) {
        int back = k->retire < target - current ? k->retire : target - current;
        k->retire -= back;
        int more = target - current - back;
        for (int i = 0; i < k->capacity && more > 0; i++) {
            conn *c = &k->conns[i];
            if (c->state != C_FREE || (c->flags & F_RETIRED)) continue;
            k->live_slots++;
            more--;
            start_slot(k, c);
        }
    } else if (target < current) {
        k->retire += current - target;  /* busy slots end after their response, waiting ones now */
        for (int prev = -1, i = k->backoff_head; i >= 0 && k->retire > 0;) {
            conn *c = &k->conns[i];
            int next = c->next_backoff;
            backoff_remove(k, prev, c);
            k->retire--;
            k->live_slots--;
            c->state = C_FREE;
            if (c->flags & F_HAS_REQUEST) withdraw(k, c);
            c->flags &= (uint16_t)~F_HAS_REQUEST;
            i = next;
        }
    }
}

/* No new request from now on: idle and not-yet-used connections close, the rest drain. */
void core_stop(core *k) {
    if (k->stopping) return;
    int64_t now = now_ns();
    k->stopping = 1;
    k->stop_ns = now;
    if (k->open_loop) {
        scan_due(k, now);
        while (overdue(k)) {  /* due, but no connection became free for them */
            pop_due(k);
            count_error(k, NULL, E_NOT_SENT);
        }
        k->due_head = k->due_seen = k->due_len = 0;
        for (int j = 0; lanes(k) && j < k->n_dests; j++) {  /* and those in each destination's lane */
            destination *d = &k->dests[j];
            for (; lane_overdue(d); d->due_head++) count_error(k, NULL, E_NOT_SENT);
            d->due_head = d->due_len = 0;
        }
    }
    if (k->h2) k->h2->stop(k);  /* HTTP/2: refused requests leave; connections with no stream close */
    while (k->backoff_head >= 0) {
        conn *c = &k->conns[k->backoff_head];
        backoff_remove(k, -1, c);
        if (c->flags & F_HAS_REQUEST) withdraw(k, c);  /* a queued connect: nothing was written */
        c->flags &= (uint16_t)~F_HAS_REQUEST;
        if (k->open_loop) free_slot(k, c);
        else {
            c->state = C_FREE;
            k->live_slots--;
        }
    }
    for (int i = 0; i < k->capacity; i++) {
        conn *c = &k->conns[i];
        if (c->state == C_IDLE || (c->state == C_CONNECTING && !(c->flags & F_IN_FLIGHT))) {
            if (c->state == C_CONNECTING && (c->flags & F_HAS_REQUEST)) withdraw(k, c);
            core_close(k, c);  /* slot_after: the slot ends, since take() now fails */
        }
    }
}

/* The drain bound is over: what is still in flight is abandoned, every connection closes. */
void core_abandon(core *k) {
    core_stop(k);
    k->abandoning = 1;
    for (int i = 0; i < k->capacity; i++) {
        conn *c = &k->conns[i];
        if (c->state == C_FREE || c->state == C_BACKOFF) continue;
        if (c->flags & F_IN_FLIGHT) count_error(k, c, E_ABANDONED);
        else if (c->flags & F_HAS_REQUEST) withdraw(k, c);
        drop(k, c);
    }
    k->io->flush(k);
    k->live_slots = 0;
    k->retire = 0;
    k->n_idle = 0;
    for (int j = 0; j < k->n_dests && k->dests; j++) k->dests[j].n_idle = 0;
}
