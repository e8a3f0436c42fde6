/* The fake backend of the core's libFuzzer harnesses (fuzz/fuzz_core_conn.c, fuzz/fuzz_h2_session.c),
 * and what the harnesses do alike as the kernel beneath it.
 *
 * The backend makes no socket and does no I/O: it records what the core asks of it (a socket, a
 * connect, a write) per slot and hands out fake descriptors that no system call ever sees
 * (sets_linger says it sets SO_LINGER itself, and it never calls core_nodelay). How a write goes is
 * each harness's own: fake_send(), which the harness defines (HTTP/1.1 requests in whole or in
 * parts; HTTP/2's h2_output into a sink that takes all, half or nothing).
 */
#ifndef TWLOAD_FUZZ_FAKE_BACKEND_H
#define TWLOAD_FUZZ_FAKE_BACKEND_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "core.h"

#define FAKE_SLOTS 3        /* the most connection slots a harness runs */
#define TIMEOUT_NS 1000000000LL
#define FAKE_FD_BASE 1000000000 /* far above any real descriptor: never one of ours */

/* A broken invariant: which one, then abort (libFuzzer saves the input). */
#define require(ok)                                                                               \
    do {                                                                                          \
        if (!(ok)) {                                                                              \
            fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, #ok);            \
            abort();                                                                              \
        }                                                                                         \
    } while (0)

/* What the core asked of each slot, by the connection's gen + 1 (0: nothing asked). */
typedef struct fake_state {
    int open_fd[FAKE_SLOTS]; /* the fake descriptor each slot holds (-1: none) */
    int next_fd;
    uint32_t socket_gen[FAKE_SLOTS];
    uint32_t connect_gen[FAKE_SLOTS];
    uint32_t send_gen[FAKE_SLOTS]; /* a write waits for a write operation (EPOLLOUT) */
} fake_state;

extern fake_state fake;
extern const backend fake_backend;

/* start (or go on with) c's write: the harness's own */
void fake_send(core *k, conn *c);

void fake_reset(void); /* before each input: no descriptor open, nothing asked */
int fake_slot(const core *k, const conn *c);

/* The harness as the kernel (the flag comes from the operation's argument):
   the socket asked for is made, or refused (EMFILE) */
void fake_socket_op(core *k, conn *c, int refused);
/* the connect completes, then the first write as loop_epoll.c's handle() starts it; or it is refused */
void fake_connect_op(core *k, conn *c, int refused);
/* time passes by one of four steps: timers, backoff, timeouts, the open loop's due requests */
void fake_tick_op(core *k, int arg);
/* open loop: 1-4 send times, due now; arg >= 16 also ends the schedule */
void fake_due_op(core *k, int arg);

/* requests taken, less those withdrawn and those with a result (answers, and errors outside
 * S_CLOSE_ERRORS, as engine/core/__init__.py's ledger counts them): what the core still owes */
int64_t fake_unsettled(const core *k);
/* whether any of the stats went down since the last call (0 at the first call after fake_reset) */
int fake_stats_decreased(const core *k);
/* a request set's per-target rows (never collected in a harness: they hold the whole run) add up to
 * the answers, and no error is counted for targets more often than in all */
void fake_check_targets(const core *k);

/* the fuzzer's input, read a byte at a time (0 past its end) */
typedef struct input {
    const uint8_t *d;
    size_t n, at;
} input;

int byte(input *in);

#endif
