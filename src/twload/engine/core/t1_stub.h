/* A stand-in with the exact API of http1_parse.h (the fuzzed parser, another workstream's
 * file), used by the build only while http1_parse.c is not in the tree. */
#ifndef TWLOAD_T1_STUB_H
#define TWLOAD_T1_STUB_H
#include <stddef.h>
#include <stdint.h>
enum { T1_MORE = 0, T1_DONE = 1, T1_ERR_PROTOCOL = -1, T1_ERR_HEAD_TOO_LARGE = -2, T1_ERR_EOF = -3 };
typedef struct t1_parser {
    int status;
    uint8_t keep_alive;
    uint8_t state, head_request, http10, chunked, conn_close, conn_keep, has_length;
    uint16_t line_len;
    uint32_t max_head, head_bytes;
    uint64_t remaining;
    char line[96];
} t1_parser;
void t1_init(t1_parser *p, int head_request, uint32_t max_head_bytes);
int t1_feed(t1_parser *p, const char *buf, size_t len, size_t *used);
int t1_eof(const t1_parser *p);
#endif
