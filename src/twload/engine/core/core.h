/* The compiled core's state: one worker's connections, counters and histograms.
 *
 * Shared by the backends (loop_epoll.c, loop_uring.c), the logic they have in common
 * (core.c) and the CPython binding (_core.c). In wrk's style (wrk.c: one struct per
 * thread) everything a worker owns hangs off one `core` struct; a connection is a small
 * fixed-size slot in one array, and there is one read buffer per worker.
 */
#ifndef TWLOAD_CORE_H
#define TWLOAD_CORE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "http1_parse.h"

enum { N_TLS_ALERTS = 33 };          /* tls.c's ALERTS, checked there */

/* error slots past the errno range; names in __init__.py (docs/ARCHITECTURE.md "Error names") */
enum {
    E_CONNECT_TIMEOUT = 256, E_TIMEOUT, E_NO_SERVER_CLOSE, E_PROTOCOL, E_HEAD_TOO_LARGE,
    E_EOF_BEFORE_RESPONSE, E_NOT_SENT, E_ABANDONED, E_OTHER_ERRNO, E_UNSOLICITED,
    E_UNEXPECTED_UPGRADE,
    /* https (tls.c): a handshake that failed for another reason (the first one's said once, tls_reason);
       the certificate refused (the verify reason said once); the peer closed during the handshake;
       the peer answered the ClientHello with text (plain HTTP); a TLS error after the handshake */
    E_TLS_HANDSHAKE_FAILED, E_TLS_CERT_VERIFY_FAILED, E_TLS_UNEXPECTED_EOF, E_TLS_ON_PLAIN_HTTP, E_TLS_ERROR,
    /* the peer's fatal TLS alert, one slot per alert of tls.c's table (its last: an alert not in it) */
    E_TLS_ALERT,
    E_TLS_ALERT_END = E_TLS_ALERT + N_TLS_ALERTS,
    /* HTTP/2 (h2.c, docs/ARCHITECTURE.md "Error names"): the session failed (nghttp2 said the peer broke
       the protocol); a stream refused by a GOAWAY and retried (outside the ledger); https: ALPN did not
       pick h2; then one slot per RFC 9113 error code 0x0..0xd and one for any other code, for a
       RST_STREAM the server sent (a stream's result) and for a GOAWAY with an error (outside the ledger) */
    E_H2_PROTOCOL = E_TLS_ALERT_END, E_H2_RETRIED, E_H2_NOT_NEGOTIATED,
    E_H2_RST, E_H2_GOAWAY = E_H2_RST + 15, E_H2_END = E_H2_GOAWAY + 15,
};

/* ---- counters handed to Python: one int64 array, this layout (mirrored in __init__.py) ---- */
enum {
    S_REQUESTS, S_OPENED, S_BYTES_IN, S_BYTES_OUT, S_MAX_LAG_US, S_SUM_LATENCY, S_SUM_CONNECT,
    S_SUM_SERVICE,
    /* the result ledger (docs/ARCHITECTURE.md "Every request one result": every request taken
       yields exactly one result): requests taken (closed loop: take(); open loop: send times that
       became due), and those taken but dropped before a byte was written (closed loop, at stop or
       retirement) */
    S_TAKEN, S_WITHDRAWN,
    /* errors that are no request's result, kept out of the ledger: the server's close after a counted
       response went wrong (awaiting its FIN), or it sent bytes nobody asked for (E_UNSOLICITED) */
    S_CLOSE_ERRORS,
    S_SUM_TLS,                        /* https: the handshakes' µs, for the mean of H_TLS */
    S_TLS_HANDSHAKES, S_TLS_RESUMED,  /* https: handshakes completed, and those that resumed a session */
    S_STATUS = 16,                    /* S_STATUS + code, codes 0..999 */
    N_STATUS = 1000,
    S_ERRORS = S_STATUS + N_STATUS,   /* S_ERRORS + errno (1..255) or + E_* above */
    N_ERRORS = E_H2_END,
    S_FIRST_CONN = S_ERRORS + N_ERRORS, /* per error: connection number of its first time (0: never) */
    S_FIRST_NS = S_FIRST_CONN + N_ERRORS, /* per error: ns into the run of its first time */
    S_LEN = S_FIRST_NS + N_ERRORS,
    S_INTERVAL_LEN = S_FIRST_CONN,    /* collect() zeroes these; first errors stay */
};

/* ---- HdrHistogram counts layout for lowest 1, highest 60,000,000 (µs), 3 significant digits:
 * sub_bucket_count 2048 (half 1024, half magnitude 10), unit magnitude 0, 16 buckets, so
 * counts_len = (16 + 1) * 1024. Index arithmetic as in HdrHistogram_c: hdr_histogram.c
 * counts_index_for(). Python checks these numbers against hdrh at import. */
enum { H_SUB_HALF_MAG = 10, H_SUB_HALF = 1024, H_SUB_MASK = 2047, H_LEN = 17 * 1024 };
enum { H_LATENCY, H_CONNECT, H_SERVICE, H_TLS, N_HIST };
#define H_HIGHEST 60000000LL

/* ---- connections ---- */
enum { C_FREE, C_BACKOFF, C_CONNECTING, C_SENDING, C_READING, C_AWAIT_EOF, C_IDLE };
enum { CLOSE_KEEPALIVE, CLOSE_FIN, CLOSE_SERVER, CLOSE_RST };

enum {
    F_IN_FLIGHT = 1,     /* a request is (being) written and its result is not yet counted */
    F_ASKED_CLOSE = 2,   /* the request in flight carries Connection: close */
    F_RETIRED = 4,       /* staged closed loop: the slot ends with this connection */
    F_HAS_REQUEST = 8,   /* connecting with a request to write once connected */
    F_LAST = 16,         /* the request being written is the last_request */
    F_IN_IDLE = 32,      /* open loop: on the idle stack */
    F_PEER_CLOSED = 64,  /* EOF (or EPOLLRDHUP) seen */
    F_IN_BACKOFF = 128,  /* on the backoff list */
    F_WATCH_OUT = 256,   /* epoll: registered for EPOLLOUT too */
    F_RECV_PENDING = 512,/* io_uring: a recv is submitted (or queued) */
    F_READ_ANY = 1024,   /* bytes were read on this connection */
    F_NODELAY = 2048,    /* TCP_NODELAY is set (after a short write: see core_nodelay) */
    F_SOCKET_PENDING = 4096, /* io_uring: the socket is being made through the ring (fd still -1) */
    F_SEND_ALONE = 8192, /* io_uring: a send went out with no recv linked behind it (it may be pending) */
    F_UNSUBMITTED = 16384, /* io_uring: the request in flight is queued, not yet submitted: nothing of it is out */
    F_UNREAD = 32768,    /* epoll: its reads stopped at the turn's bound with more waiting (on the backend's list) */
};

typedef struct conn {
    int fd;
    uint8_t state;
    uint8_t backoff_exp;   /* closed loop: this slot waits 2^backoff_exp ms after its next failed connect */
    uint16_t flags;
    uint32_t gen;          /* bumped at every close: stale completions are ignored */
    uint32_t number;       /* connection attempt number (first_errors) */
    uint32_t sent;         /* requests written on this connection */
    uint32_t completed;    /* responses completed on this connection */
    uint32_t woff;         /* bytes of the current request written so far */
    int64_t t_start;       /* connect start, later the send time of the request in flight */
    int64_t intended;      /* open loop: when the request in flight was due (0: closed loop) */
    int64_t t_retry;       /* C_BACKOFF: when to try again */
    int32_t next_backoff;  /* backoff list link (slot index, -1 ends) */
    /* a request set (k->n_targets > 0): the target of the slot's request; chosen, not yet begun
       (it stays with the slot through a connection closed before a byte of it went out); its
       rendering in the slot's part of k->render (templated targets) */
    int32_t target;        /* -1: none (errors then count in the totals only) */
    uint16_t dest;         /* several destinations (k->n_dests > 0): the one this slot connects to, set at load */
    uint8_t chosen, rendered, rendered_last;
    uint32_t rendered_len;
    /* io_uring: sends from the slot's render buffer the kernel has not completed yet (their CQE is
       still to come), so the buffer is the kernel's to read: the slot renders nothing, and opens no
       connection, until it is 0 (core_render_free) */
    uint8_t render_sends;
    uint8_t render_wait;   /* the slot waits for render_sends to reach 0 (1: to connect, 2: to be freed) */
    t1_parser parser;
} conn;

/* ---- a request set (--targets): targets the core picks per request, some templated ---- */
/* template ops (engine/request_set.py builds them): literal bytes, or a value filled per request */
enum { TPL_LIT, TPL_LAST_LIT, TPL_SEQ, TPL_RAND, TPL_UUID, TPL_WORKER, TPL_CLEN, N_TPL_OPS };
typedef struct tpl_op {
    uint8_t kind;
    uint32_t len;          /* TPL_LIT / TPL_LAST_LIT: bytes at data */
    uint64_t arg;          /* TPL_RAND: N, the values are 0..N-1 */
    const char *data;
} tpl_op;
typedef struct req_target {
    char *plain, *last;    /* not templated: the whole request, and its last-on-the-connection form */
    uint32_t plain_len, last_len;
    tpl_op *ops;           /* templated: the head's ops [0, body_start), the body's [body_start, n_ops) */
    uint32_t n_ops, body_start;
    uint32_t head_max, body_max; /* the most bytes the head and the body render to */
    char *pool;            /* the ops' literal bytes */
    int32_t group;         /* its per-target results' index */
    int32_t dest;          /* its destination (k->dests; 0 with one) */
    uint8_t head, asks_upgrade, uses_seq;
    uint16_t weight;       /* a streamed set (k->paged): sent this many times in a row */
} req_target;
/* several destinations (targets on different hosts or ports): each its address, and its part of the
   order's cycle (its own targets, weights as repeats); the slots are split across them at load */
typedef struct destination {
    struct sockaddr_storage addr;
    socklen_t addr_len;
    uint32_t order_start, order_len, order_next;
    int64_t opened;        /* connections opened to it since the last collect */
    /* open loop: its own lane. Each request falling due is given a destination (k->dest_cycle, the
       destinations' weights) and waits in that one's FIFO of send times for a connection of its own:
       an idle one, or a new one on one of its unused slots (its share of --max-connections) */
    int64_t *due;
    uint32_t due_head, due_len, due_cap;
    int *idle, *free_slots; /* stacks of slot indexes, each sized for the slots of this destination */
    int n_idle, n_free, n_slots;
} destination;
#define MAX_DESTS 256
/* per-target results: one int64 row a group (a name in the file), and a latency histogram */
enum { G_REQUESTS, G_SUM_LATENCY, G_STATUS, G_ERRORS = G_STATUS + N_STATUS, G_LEN = G_ERRORS + N_ERRORS };
#define MAX_GROUPS 256           /* plan/targets.py MAX_NAMES */
#define MAX_RENDER (1u << 20)    /* the most bytes one templated request may render to */
#define MAX_RENDER_TOTAL (256u << 20) /* render buffers of all slots of a worker, at most */

struct backend;
struct core;
struct h2_state;
/* HTTP/2 (h2.c): what core.c calls where a connection carries streams instead of one request at a
   time; NULL (k->h2) for HTTP/1.1. Through pointers, so core.c links without nghttp2. */
typedef struct h2_hooks {
    int (*received)(struct core *k, conn *c, const char *data, size_t len); /* as core_received */
    void (*ended)(struct core *k, conn *c, int error); /* the peer closed (error 0) or a read failed: settle, close */
    void (*sweep)(struct core *k, conn *c, int64_t now); /* its streams' timeouts */
    void (*drop)(struct core *k, conn *c);        /* c is being closed: its session goes */
    void (*stop)(struct core *k);                 /* no new stream from now on */
    int (*take_owed)(struct core *k, conn *c);    /* 1: a request refused earlier is c's, its target too (closed loop) */
    void (*dispatch)(struct core *k);             /* open loop: due requests to connections with a stream free */
} h2_hooks;
struct ssl_st;      /* OpenSSL's SSL and SSL_CTX: only tls.c includes OpenSSL */
struct ssl_ctx_st;

/* https: one connection's TLS state, in core.tls[slot] (tls.c) */
enum { TLS_NONE, TLS_HANDSHAKE, TLS_OPEN, TLS_PEER_DONE, TLS_BROKEN };
typedef struct tls_conn {
    struct ssl_st *ssl;
    struct ssl_st *spare;  /* the slot's last connection's SSL, reset for its next one (tls_begin) */
    int64_t t_tcp;         /* when the TCP connect was done (the ClientHello went out): the handshake's start */
    uint8_t phase;
    uint8_t notified;      /* the peer's close_notify came without its FIN: TLS_NOTIFIED was said (1), answered (2) */
    uint8_t first_len;     /* during the handshake: the first record header the peer sent */
    uint8_t first[5];
    uint8_t alert;         /* the fatal alert the peer sent (its code; 0: none, as close_notify is no failure) */
    uint8_t drained;       /* OpenSSL's last read of the socket came back short: its queue was empty (tls_drained) */
    uint8_t eof;           /* the peer's FIN was read (after its close_notify): nothing is left to drain (tls_end) */
    uint8_t held;          /* a read failed behind data it handed over (tls_read, gather): held_slot is said next */
    int held_slot;
} tls_conn;

/* https options (tls_init): what the user may pin */
typedef struct tls_options {
    const char *cacert;       /* NULL: the system's store */
    int insecure;             /* -k: the certificate is not verified */
    const char *min_version;  /* --tls-min: "1.2" (NULL: the same) or "1.3" */
    const char *ciphers;      /* TLS 1.2 cipher list (--ciphers), NULL: OpenSSL's default */
    const char *ciphersuites; /* TLS 1.3 cipher suites (--ciphersuites), NULL: OpenSSL's default */
    int resume;               /* --tls-resume: sessions/tickets reused on the worker's next connections */
} tls_options;

typedef struct core {
    /* plan */
    struct sockaddr_storage target;
    socklen_t target_len;
    struct sockaddr_storage *sources;
    socklen_t *source_lens;
    int n_sources, next_source;
    char *request, *last_request;
    uint32_t request_len, last_request_len;
    uint32_t max_request_len;  /* the longest request written (io_uring's TCP_NODELAY choice) */
    /* a request set (n_targets > 0; else request/last_request): the order is a cycle of target
       indexes (weights are repeats), walked round-robin from the worker's index or drawn at random */
    req_target *targets;
    int n_targets;
    int32_t *order;
    uint32_t order_len, order_next;
    destination *dests;               /* n_dests > 0: several destinations (else `target`, one order) */
    int n_dests;
    uint16_t *dest_cycle;             /* open loop with n_dests: destination indexes, weights as repeats */
    uint32_t dest_cycle_len, dest_cycle_next;
    uint32_t lane_turn;               /* open loop with n_dests: the destination whose lane opens first */
    /* a streamed request set (a request file over engine/spool.py SPOOL_OVER targets): its targets
       compiled into a spool file (records, engine/spool.py), read a page at a time into one of two
       halves of `targets` (page_cap each): the core walks one page while the other is loaded ahead;
       a page is loaded again only once no slot holds one of its targets (chosen or in flight) */
    int paged;
    int spool_fd;
    uint64_t spool_off, spool_len;    /* the next record's offset; the file's size (then it starts over) */
    uint32_t page_cap, page_n[2], page_pos, page_rep;
    uint8_t page_ready[2];
    int page_cur;
    uint32_t render_max;              /* the spool's longest templated request (its buffers' size) */
    char *spool_buf;                  /* records read in chunks */
    size_t spool_buf_cap;
    int64_t next_refill, page_repeats;
    int spool_error;                  /* errno of a failed read (the worker reports it), 0: none */
    int order_random;
    uint64_t rng_order, rng_values;  /* splitmix64 states */
    uint64_t seq_next;                /* {{seq}}: this worker's k-th request is k * workers + worker */
    uint32_t worker, workers;
    char *render;                     /* templated: render_cap bytes per slot */
    uint32_t render_cap;
    int n_groups;
    int64_t *gstats;                  /* n_groups * G_LEN */
    int64_t *ghist;                   /* n_groups * H_LEN */
    uint8_t *gtouched;                /* n_groups: counted since the last collect */
    int close_mode;
    uint32_t per_connection;  /* 0: unlimited */
    int64_t budget;           /* requests left to take; -1: unlimited */
    int head_request;
    int asks_upgrade;         /* the request carries Upgrade: a 101 answers it */
    uint32_t max_head;
    int64_t timeout_ns, connect_timeout_ns;
    int open_loop, staged;

    /* connections */
    conn *conns;
    int capacity;
    int live_slots, retire;   /* closed loop */
    int n_fd, n_connecting, in_flight;
    uint32_t attempts;
    int32_t backoff_head, backoff_tail;
    int opens_left;           /* connects this turn of the loop may still start (OPENS_PER_TURN) */
    uint8_t backoff_exp_open; /* open loop (no slots): the worker's wait after a failed connect, as conn.backoff_exp */
    int *idle;                /* open loop: idle connections (stack of slot indexes) */
    int n_idle;
    int *free_slots;          /* open loop: unused slots (stack) */
    int n_free;

    /* open loop: intended send times (ns), in order */
    int64_t *due;
    size_t due_head, due_len, due_cap, due_seen;
    int schedule_done;

    int stopping;
    int abandoning;           /* core_abandon closes everything: backends may close the plain way */
    int64_t started_ns, stop_ns, next_sweep;

    char peer_bytes[64];      /* the first bytes of the first connection whose response was not HTTP */
    int peer_len;             /* > 0: kept, not yet handed to Python; -1: handed over */
    char *rbuf;
    size_t rbuf_len;

    /* https (tls.c; NULL for http://): the worker's one context, the per-slot state (capacity entries),
       the host for SNI and verification, and the first TLS failure's reason, said once (as peer_bytes) */
    struct ssl_ctx_st *tls_ctx;
    tls_conn *tls;
    char *tls_host;
    char tls_reason[160];
    int tls_reason_len;       /* > 0: kept, not yet handed to Python; -1: handed over */
    int tls_resume;           /* --tls-resume: new connections offer tls_session */
    int tls_peer_close;       /* how the servers met so far close after their close_notify (TLS_PEER_*, tls_answer_delay) */
    struct ssl_session_st *tls_session; /* the newest session (ticket) the server gave, one reference held */

    /* HTTP/2 (h2.c; NULL for HTTP/1.1): the hooks core.c calls, and the worker's h2 state */
    const h2_hooks *h2;
    struct h2_state *h2_state;

    int64_t stats[S_LEN];
    int64_t hist[N_HIST][H_LEN];

    const struct backend *io;
    void *io_state;
} core;

/* what a backend provides (loop_epoll.c, loop_uring.c) */
typedef struct backend {
    const char *name;
    int (*init)(core *k);          /* 0 or -errno */
    void (*fini)(core *k);
    /* the connect of slot c (socket already made, options set): start it; on failure return -errno */
    int (*open)(core *k, conn *c);
    /* optional: make c's socket asynchronously (0: queued, core_socket_made follows; <0: make it
       with socket() instead) */
    int (*socket)(core *k, conn *c);
    /* optional: 1 when open() sets SO_LINGER {1,0} itself for --close rst (io_uring: through the ring) */
    int (*sets_linger)(core *k);
    /* start writing c's current request (c->woff bytes done) */
    void (*send)(core *k, conn *c);
    void (*close)(core *k, conn *c);
    void (*flush)(core *k);        /* hand the kernel what is queued (io_uring), before returning to Python */
    /* wait for and handle events until `until` (ns) at most; returns -errno on a loop failure */
    int (*poll)(core *k, int64_t until);
} backend;

extern const backend epoll_backend;
#ifdef TWLOAD_HAVE_URING
extern const backend uring_backend;
int uring_usable(void);
int uring_sockets_usable(void);
#endif

/* core.c: the logic both backends share */
int64_t now_ns(void);
int hist_index(int64_t v);                    /* a value's slot in the HdrHistogram counts array */
int core_init(core *k, int capacity);
int core_run(core *k, int64_t until);         /* 1: nothing left to do, 0: until reached, <0: -errno */
void core_close(core *k, conn *c);            /* close c without counting anything, then its slot goes on */
void core_fini(core *k);
void core_error(core *k, conn *c, int slot);
void core_start(core *k, int64_t started_ns, int connections);
void core_set_connections(core *k, int target);
int core_add_due(core *k, const int64_t *times, size_t n);
void core_tick(core *k, int64_t now);        /* timers: backoff, due requests, timeouts */
int64_t core_next_timer(core *k, int64_t now, int64_t until);
int core_done(core *k);
void core_stop(core *k);
void core_abandon(core *k);

void core_open(core *k, conn *c);             /* a new connection for slot c */
void core_connect_failed(core *k, conn *c, int err);
int core_connected(core *k, conn *c, int64_t now);  /* 1: write the request now */
/* c's request (normal or last) for its next send */
const char *core_request(core *k, conn *c, uint32_t *len);
void core_begin(core *k, conn *c, int64_t t);  /* the request starts going out at t: the clock runs */
void core_sent(core *k, conn *c, size_t n);   /* n more bytes of the request were written */
int core_received(core *k, conn *c, const char *data, size_t len); /* 0 if c is still open */
void core_received_unsent(core *k, conn *c, size_t len); /* bytes came before c's request went out (closes c) */
void core_peer_closed(core *k, conn *c);      /* EOF: the peer closed */
void core_close_unsent(core *k, conn *c);     /* c closes before its taken request was written */
void core_read_failed(core *k, conn *c, int err); /* a read on c failed with err */
void core_fail(core *k, conn *c, int error);
/* HTTP/2 (h2.c): one stream's share of what core.c does per request */
int core_take(core *k);                       /* a request from the budget (1), or none */
void core_withdraw(core *k, const conn *c);   /* a request taken and never written leaves the run */
void core_count_error(core *k, const conn *c, int error); /* a request's result by name */
/* the same for a stream's request: in `target`'s per-target row (-1: the totals only) */
void core_count_stream_error(core *k, const conn *c, int32_t target, int error);
void core_count_close_error(core *k, const conn *c, int error); /* by name, outside the ledger */
/* a response to a request of `target` (-1: none): its status and latency (from `intended` in the open
   loop, else from `sent`), also in the target's per-target row */
void core_response(core *k, int32_t target, int status, int64_t intended, int64_t sent, int64_t now);
int64_t core_next_due(core *k);               /* open loop: the oldest due send time, taken (0: none due) */
void core_close_error(core *k, conn *c, int error); /* after a counted response: the close went wrong, or bytes nobody asked for */
void core_closed(core *k, conn *c);           /* after the backend closed c's fd */
void core_nodelay(conn *c);                   /* TCP_NODELAY on c, once: the rest of a request is not held back */
void core_record_tls(core *k, int64_t ns);     /* a handshake took ns */
int core_socket(const core *k, const conn *c); /* a new socket for c's destination: fd or -errno */
/* the address slot c connects to: its destination's, or the target's */
const struct sockaddr *core_address(const core *k, const conn *c, socklen_t *len);
int core_targets_init(core *k);               /* after targets, order, groups are set: sizes, buffers (0, -errno) */
int core_lanes_init(core *k);                 /* open loop, several destinations, slots' dests set: their lanes */
int core_spool_init(core *k);                 /* paged: spool_fd, spool_len, page_cap, render_max, n_groups set */
void core_spool_refill(core *k, int64_t now); /* paged: the page not walked, loaded when it is free */
void core_targets_fini(core *k);
void core_choose(core *k, conn *c);           /* a request set: the target of c's next request */
/* a request set's target rendered for one request outside any slot's buffer (HTTP/2: a stream's):
   its body into body (t->body_max bytes at most; NULL: not rendered, *body_len given), its head into
   head (t->head_max), each's length */
void core_render_parts(core *k, const req_target *t, char *head, uint32_t *head_len, char *body, uint32_t *body_len);
void core_socket_made(core *k, conn *c, int res); /* the backend made c's socket: fd or -errno */
int core_rendered(const core *k, const char *req); /* req points into a slot's render buffer */
void core_render_free(core *k, conn *c);      /* io_uring: c's render_sends reached 0: a waiting slot goes on */

/* tls.c: TLS behind the epoll backend's socket operations */
enum { TLS_DATA, TLS_WAIT_READ, TLS_WAIT_WRITE, TLS_CLOSED, TLS_FAILED, TLS_NOTIFIED };
/* core.tls_peer_close: nothing seen yet; a server waited for our close_notify before its FIN; one closed
   without waiting for it (sticky: a single FIN that came unanswered settles it) */
enum { TLS_PEER_UNKNOWN, TLS_PEER_WAITS, TLS_PEER_CLOSES_ALONE };
/* a bad option's one-line reason, or NULL; the same checks tls_init makes (out: why, why_len bytes) */
const char *tls_check(const tls_options *o, char *why, size_t why_len);
int tls_init(core *k, const char *host, const tls_options *o); /* 0, -ENOMEM, -EINVAL (--cacert), -EPROTO (tls_check) */
const char *tls_alert_name(int i);            /* the name of alert slot E_TLS_ALERT + i, i < N_TLS_ALERTS */
void tls_fini(core *k);
int tls_begin(core *k, conn *c);              /* c's socket exists: its SSL (0 or -ENOMEM) */
int tls_handshake(core *k, conn *c, int64_t now); /* 1 done, 0 waiting, -error slot */
int64_t tls_tcp_done(core *k, const conn *c); /* when c's TCP connect was done */
int tls_read(core *k, conn *c, char *buf, size_t len, size_t *n, int *error);   /* TLS_* */
int tls_drained(const core *k, const conn *c); /* 1: nothing left to read until the socket's next edge */
int tls_write(core *k, conn *c, const char *buf, size_t len, size_t *n, int *error);
void tls_end(core *k, conn *c);               /* before c's fd closes */
void tls_answer_close(core *k, conn *c);      /* our close_notify, to the peer's that came without a FIN */
int64_t tls_answer_delay(const core *k);      /* how long a FIN may follow the peer's close_notify before tls_answer_close */
const char *tls_take_reason(core *k, int *len); /* the first TLS failure's reason, once */
int tls_alpn_h2(core *k, conn *c);            /* --http2: ALPN picked h2 (else the reason is kept) */

#endif
