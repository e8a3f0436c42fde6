/* Incremental HTTP/1.1 response parser (RFC 9112), for bytes streamed off a socket.
 *
 * No heap, no copy of the head: the parser keeps only a small fixed-size state, so
 * one read buffer per worker serves every connection. Feed it whatever recv()
 * returned; it says when a whole final response has ended and where.
 *
 *   t1_init(&p, is_head, 65536);            before each response
 *   rc = t1_feed(&p, buf, len, &used);      T1_MORE: all bytes consumed, feed more
 *                                           T1_DONE: response complete after `used`
 *                                                    bytes; the rest is the next one's
 *                                           < 0:     error, the connection is unusable
 *                                           T1_DONE and errors stay until t1_init
 *                                           (later feeds return them, used = 0)
 *   rc = t1_eof(&p);                        the peer closed: T1_DONE if that ends a
 *                                           close-delimited body, else T1_ERR_EOF
 *
 * Framing follows RFC 9112 section 6.3: no body for HEAD, 1xx, 204, 304;
 * Transfer-Encoding with chunked last (extensions, trailers); Content-Length;
 * otherwise the body runs to EOF. 1xx interim responses (100, 103...) are skipped;
 * 101 is final (keep_alive 0: the connection speaks another protocol now).
 * Lines end in CRLF (bare LF is refused, as llhttp does); empty lines before the
 * status line are ignored; obs-fold is refused. max_head_bytes caps each head
 * (status line through the blank line; every 1xx head on its own) and the trailer
 * section (T1_ERR_HEAD_TOO_LARGE), and each chunk-size line (T1_ERR_PROTOCOL).
 * Transfer-Encoding together with Content-Length is a protocol error (as in llhttp), and so
 * is a repeated Content-Length, even with the same value (two fields, or a list "5, 5").
 */
#ifndef TWLOAD_HTTP1_PARSE_H
#define TWLOAD_HTTP1_PARSE_H

#include <stddef.h>
#include <stdint.h>

enum { T1_MORE = 0, T1_DONE = 1, T1_ERR_PROTOCOL = -1, T1_ERR_HEAD_TOO_LARGE = -2, T1_ERR_EOF = -3 };

typedef struct t1_parser {
    int status;         /* final status code of the response being/just parsed */
    uint8_t keep_alive; /* 1 if the connection may be reused after this response */
    uint8_t client_closes; /* keep_alive is 0 although the server keeps the connection open (HTTP/1.0
                              with Transfer-Encoding): the client closes it, no FIN comes */
    /* private incremental state */
    uint8_t state;      /* enum in http1_parse.c */
    uint8_t head_request;
    uint8_t flags;      /* F_* in http1_parse.c: what the headers said so far */
    uint8_t minor;      /* HTTP/1.<minor> */
    uint8_t field;      /* which interesting header's value is being read */
    uint8_t match;      /* candidate names (or list tokens) still matching */
    uint8_t pos;        /* bytes of the name (or list token) so far, saturating */
    uint8_t elem;       /* E_* in http1_parse.c: list element state */
    uint8_t chunked_count; /* "chunked" codings seen in Transfer-Encoding */
    uint32_t head_bytes; /* bytes of the current head, chunk-size line or trailer section */
    uint32_t max_head_bytes;
    uint64_t number;    /* the Content-Length list element or chunk size being read */
    uint64_t length;    /* the declared Content-Length */
    uint64_t remaining; /* body or chunk-data bytes still to come */
} t1_parser;

void t1_init(t1_parser *p, int head_request, uint32_t max_head_bytes);
int t1_feed(t1_parser *p, const char *buf, size_t len, size_t *used);
int t1_eof(const t1_parser *p);

#endif
