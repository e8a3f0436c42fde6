/* HTTP/2 in the compiled core (h2.c): libnghttp2's session API inside the core's own loop.
 *
 * nghttp2 takes the bytes read (nghttp2_session_mem_recv) and gives the bytes to write
 * (nghttp2_session_mem_send) and does no I/O of its own, so the backends keep doing every read
 * and write: the epoll backend hands the bytes it read to core_received (which, with --http2,
 * goes through k->h2->received), and writes what h2_output gives. core.c reaches this file only
 * through the hooks in core.h (h2_hooks), so it stays libc-only for the core's fuzzer.
 */
#ifndef TWLOAD_H2_H
#define TWLOAD_H2_H

#include "core.h"

#define H2_MAX_STREAMS 1000  /* --streams at most: each connection's stream table has this bound */

/* 0, -ENOMEM, -EINVAL. `nv` is the request's header block as name\0value\0 pairs (pseudo-headers
   first, names in lower case), `nv_len` bytes; `body` its body (may be empty). */
int h2_init(core *k, int streams, const char *nv, size_t nv_len, const char *body, size_t body_len);
/* A request set (--targets, after core_targets_init): each target's header block and body as streams
   send them (ops rendering name\0value\0 pairs, then the body). 0, -ENOMEM, -EINVAL (a target that is
   no header block, several destinations), -ENOBUFS (templated bodies of every stream past
   MAX_RENDER_TOTAL). */
int h2_targets_init(core *k);
void h2_fini(core *k);

/* The backend's side: what to write on c now (len 0: nothing; NULL: the session failed, and c is
   closed already), then how much of it went out. */
const uint8_t *h2_output(core *k, conn *c, size_t *len);
void h2_wrote(core *k, conn *c, size_t n);
int h2_peer_max_streams(const core *k);       /* the smallest SETTINGS_MAX_CONCURRENT_STREAMS seen (0: none) */
int64_t h2_owed(const core *k);                /* requests taken and waiting for a stream (the fuzzer's ledger) */
int h2_sessions(const core *k);                /* connections with a session (the fuzzer: never more than open) */

extern const h2_hooks h2_core_hooks;

#endif
