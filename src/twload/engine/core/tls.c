/* TLS for the core's connections (OpenSSL), behind the same operations as the plain socket, as
 * wrk does it (wrk src/ssl.c: ssl_connect / ssl_read / ssl_write map SSL_ERROR_WANT_READ and
 * SSL_ERROR_WANT_WRITE to "retry" and everything else to an error; src/net.c holds the plain
 * versions). The epoll backend calls these instead of connect-then-send and recv/send: the handshake
 * is driven by the connection's epoll events (SSL_connect returning WANT_READ/WANT_WRITE), then
 * SSL_write and SSL_read take the place of send and recv, reading into the worker's one buffer.
 *
 * One SSL_CTX per worker (a core is one worker's), one SSL per open connection in k->tls (a parallel
 * array of k->capacity entries, indexed by slot), kept when it closes whole and reset for the slot's
 * next connection (tls_begin). Each SSL keeps its record buffers: with
 * SSL_MODE_RELEASE_BUFFERS OpenSSL frees and allocates the read buffer whenever it empties
 * (ssl/record/rec_layer_s3.c: ssl3_release_read_buffer after each record), once a request on
 * keep-alive, which cost 1.12x wrk's CPU per request against nginx; kept, it is 0.99x, and an open
 * connection holds 41 KB to wrk's 53 (benchmarks/RESULTS.md, 2026-12-06).
 * Sessions are not reused by default: each connection costs the server a full handshake, as a fleet
 * of new clients does. With --tls-resume the worker keeps the newest session the server gave (TLS 1.2:
 * its session ID or ticket at the handshake's end; TLS 1.3: the NewSessionTicket that comes after the
 * handshake, read by a later SSL_read) and offers it on every new connection.
 *
 * This file holds every OpenSSL call, so core.c stays libc-only (the core fuzzer builds it alone).
 */
#define _GNU_SOURCE
#include "core.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

/* The thread's error queue emptied, as SSL_get_error needs it before each call (SSL_get_error(3)).
   failure() empties it after every failed call, so it is empty nearly always: looking (ERR_peek_error)
   costs less than ERR_clear_error, which clears each of the queue's 16 entries every time
   (crypto/err/err.c, OpenSSL 3.0: ERR_clear_error -> err_clear for i < ERR_NUM_ERRORS). */
static inline void errors_clear(void) {
    if (ERR_peek_error()) ERR_clear_error();
}

/* At most this many reads of the worker's buffer drain a closing connection's receive queue. */
#define DRAIN_READS 4

/* The ALPN protocols offered, in wire format (RFC 7301 section 3.1: each name after its length byte).
   The one place they are listed; --http2 offers h2 alone. */
static const unsigned char ALPN[] = "\x08http/1.1";
static const unsigned char ALPN_H2[] = "\x02h2";  /* --http2: h2 alone (tls_alpn_h2) */

/* TLS alerts by code, named as in the IANA "TLS Alerts" registry (RFC 8446 section 6, RFC 5246
   section 7.2). close_notify and user_canceled end nothing and are never kept (on_info). The error
   slot E_TLS_ALERT + i is ALERTS[i]; the one after them, "unknown", takes a code not in the table. */
static const struct {
    uint8_t code;
    const char *name;
} ALERTS[] = {
    {10, "unexpected_message"}, {20, "bad_record_mac"}, {21, "decryption_failed"}, {22, "record_overflow"},
    {30, "decompression_failure"}, {40, "handshake_failure"}, {41, "no_certificate"}, {42, "bad_certificate"},
    {43, "unsupported_certificate"}, {44, "certificate_revoked"}, {45, "certificate_expired"},
    {46, "certificate_unknown"}, {47, "illegal_parameter"}, {48, "unknown_ca"}, {49, "access_denied"},
    {50, "decode_error"}, {51, "decrypt_error"}, {60, "export_restriction"}, {70, "protocol_version"},
    {71, "insufficient_security"}, {80, "internal_error"}, {86, "inappropriate_fallback"},
    {100, "no_renegotiation"}, {109, "missing_extension"}, {110, "unsupported_extension"},
    {111, "certificate_unobtainable"}, {112, "unrecognized_name"}, {113, "bad_certificate_status_response"},
    {114, "bad_certificate_hash_value"}, {115, "unknown_psk_identity"}, {116, "certificate_required"},
    {120, "no_application_protocol"},
};
_Static_assert(sizeof ALERTS / sizeof ALERTS[0] == N_TLS_ALERTS - 1, "core.h N_TLS_ALERTS: the table and unknown");

const char *tls_alert_name(int i) {
    return i >= 0 && i < N_TLS_ALERTS - 1 ? ALERTS[i].name : "unknown";
}

static int alert_slot(uint8_t code) {
    for (int i = 0; i < N_TLS_ALERTS - 1; i++)
        if (ALERTS[i].code == code) return E_TLS_ALERT + i;
    return E_TLS_ALERT + N_TLS_ALERTS - 1;
}

static void keep_reason(core *k, const char *what, const char *detail) {
    if (k->tls_reason_len != 0) return;  /* the first one only: kept, or handed over already */
    int n = snprintf(k->tls_reason, sizeof k->tls_reason, "%s%s%s", what, detail ? ": " : "", detail ? detail : "");
    if (n < 0) return;
    k->tls_reason_len = n < (int)sizeof k->tls_reason ? n : (int)sizeof k->tls_reason - 1;
}

/* One TLS 1.3 suite name: OpenSSL takes it alone (SSL_CTX_set_ciphersuites drops names it does not
   know without a word: ssl/ssl_ciph.c, ciphersuite_cb), so each is tried by itself on `ctx`. */
static int known_suite(SSL_CTX *ctx, const char *name) {
    if (SSL_CTX_set_ciphersuites(ctx, name) != 1) return 0;
    STACK_OF(SSL_CIPHER) *all = SSL_CTX_get_ciphers(ctx);
    for (int i = 0; i < sk_SSL_CIPHER_num(all); i++)
        if (strcmp(SSL_CIPHER_get_version(sk_SSL_CIPHER_value(all, i)), "TLSv1.3") == 0) return 1;
    return 0;
}

/* The version floor and the cipher choices on ctx: NULL, or why not (in why). */
static const char *apply_options(SSL_CTX *ctx, const tls_options *o, char *why, size_t why_len) {
    int min = TLS1_2_VERSION;
    if (o->min_version && strcmp(o->min_version, "1.3") == 0)
        min = TLS1_3_VERSION;
    else if (o->min_version && strcmp(o->min_version, "1.2") != 0) {
        snprintf(why, why_len, "--tls-min must be 1.2 or 1.3, not %.40s", o->min_version);
        return why;
    }
    if (SSL_CTX_set_min_proto_version(ctx, min) != 1) {
        snprintf(why, why_len, "--tls-min %s: this OpenSSL (%s) cannot", min == TLS1_3_VERSION ? "1.3" : "1.2",
                 OpenSSL_version(OPENSSL_VERSION));
        return why;
    }
    if (o->ciphers) {
        /* each name (not the !, -, + and @ operators) alone first: a list is refused only when nothing
           in it matches (ssl/ssl_ciph.c: ssl_create_cipher_list), so a misspelt name would go unsaid */
        char name[64];
        const char *p = o->ciphers;
        while (*p) {
            size_t n = strcspn(p, ":, ");
            if (n >= sizeof name) {
                snprintf(why, why_len, "--ciphers: %.60s... is no cipher name", p);
                return why;
            }
            memcpy(name, p, n);
            name[n] = 0;
            if (n && !strchr("!-+@", name[0]) && SSL_CTX_set_cipher_list(ctx, name) != 1) {
                snprintf(why, why_len, "--ciphers: %s matches no TLS 1.2 cipher this OpenSSL offers "
                         "(see `openssl ciphers -v`)", name);
                return why;
            }
            p += n + (p[n] != 0);
        }
        if (SSL_CTX_set_cipher_list(ctx, o->ciphers) != 1) {
            snprintf(why, why_len, "--ciphers %.60s: no TLS 1.2 cipher this OpenSSL offers", o->ciphers);
            return why;
        }
    }
    if (o->ciphersuites) {
        /* each name alone first, so a misspelt one is said rather than dropped */
        char name[64];
        const char *p = o->ciphersuites;
        while (*p) {
            size_t n = strcspn(p, ":");
            if (n == 0 || n >= sizeof name) {
                snprintf(why, why_len, "--ciphersuites %.60s: not a list of TLS 1.3 suites (A:B)", o->ciphersuites);
                return why;
            }
            memcpy(name, p, n);
            name[n] = 0;
            if (!known_suite(ctx, name)) {
                snprintf(why, why_len, "--ciphersuites: %s is no TLS 1.3 suite OpenSSL knows "
                         "(TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384, TLS_CHACHA20_POLY1305_SHA256)", name);
                return why;
            }
            p += n + (p[n] == ':');
        }
        if (SSL_CTX_set_ciphersuites(ctx, o->ciphersuites) != 1) {
            snprintf(why, why_len, "--ciphersuites %.60s: refused by OpenSSL", o->ciphersuites);
            return why;
        }
    }
    return NULL;
}

const char *tls_check(const tls_options *o, char *why, size_t why_len) {
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) return "TLS: out of memory";
    const char *bad = apply_options(ctx, o, why, why_len);
    SSL_CTX_free(ctx);
    errors_clear();
    return bad;
}

/* A fatal alert from the peer is kept on its connection, which names its failure by it (failure()).
   TLS 1.2 alerts of level warning end nothing (RFC 5246 section 7.2.2); in TLS 1.3 every alert but
   close_notify and user_canceled is fatal whatever its level says (RFC 8446 section 6). */
static void on_info(const SSL *ssl, int where, int ret) {
    /* SSL_CB_READ_ALERT is SSL_CB_ALERT | SSL_CB_READ: `where & SSL_CB_READ_ALERT` alone would take our
       own alerts (SSL_CB_WRITE_ALERT) too, e.g. the bad_certificate we send on a refused certificate */
    if ((where & SSL_CB_READ_ALERT) != SSL_CB_READ_ALERT) return;
    int level = (ret >> 8) & 0xff, code = ret & 0xff;
    if (code == SSL_AD_CLOSE_NOTIFY || code == SSL_AD_USER_CANCELLED) return;
    if (level != SSL3_AL_FATAL && SSL_version(ssl) < TLS1_3_VERSION) return;
    tls_conn *t = SSL_get_app_data(ssl);
    if (t && !t->alert) t->alert = (uint8_t)code;
}

/* --tls-resume: a session the server gave (TLS 1.3: each NewSessionTicket) replaces the one kept; the
   reference OpenSSL hands over is ours (returning 1). */
static int on_new_session(SSL *ssl, SSL_SESSION *session) {
    core *k = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    SSL_SESSION_free(k->tls_session);
    k->tls_session = session;
    return 1;
}

/* -k: the certificate goes unverified, so its chain is not built and checked either. Under
   SSL_VERIFY_NONE OpenSSL still runs X509_verify_cert on the server's chain and then ignores its result
   (ssl/statem/statem_clnt.c, OpenSSL 3.0: tls_post_process_server_certificate fails only when
   verify_mode is not SSL_VERIFY_NONE); a callback set here replaces that call (ssl/ssl_cert.c:
   ssl_verify_cert_chain). The handshake itself still proves the server holds the certificate's key
   (its CertificateVerify or key exchange signature is checked apart from this). */
static int accept_unverified(X509_STORE_CTX *store, void *arg) {
    (void)store;
    (void)arg;
    return 1;
}

int tls_init(core *k, const char *host, const tls_options *o) {
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) return -ENOMEM;
    k->tls_ctx = ctx;
    k->tls = calloc((size_t)k->capacity, sizeof *k->tls);
    k->tls_host = strdup(host);
    if (!k->tls || !k->tls_host) return -ENOMEM;
    /* as Python's ssl.create_default_context, which the pre-flight uses: TLS 1.2 at least (--tls-min),
       the peer verified against --cacert alone if given, else the system's store */
    char why[160];
    if (apply_options(ctx, o, why, sizeof why)) return -EPROTO;
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    /* Without read-ahead OpenSSL reads a record in two read()s, its 5-byte header and then exactly its
       body (ssl/record/rec_layer_s3.c, OpenSSL 3.0: ssl3_read_n sets max = n unless read_ahead), so a
       keep-alive response cost two reads, and a server's handshake flight two per record. With it, one
       read() takes what the socket holds, up to the record buffer, which is as large either way
       (ssl3_setup_read_buffer sizes it for a whole record), so an open connection holds no more. */
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_info_callback(ctx, on_info);
    SSL_CTX_set_app_data(ctx, k);
    k->tls_resume = o->resume;
    if (o->resume) {
        /* the client cache's only store is k->tls_session: OpenSSL's own would keep every session */
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
        SSL_CTX_sess_set_new_cb(ctx, on_new_session);
    } else {
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    }
    /* --http2: h2 alone (tls_alpn_h2); else http/1.1 */
    if ((k->h2 ? SSL_CTX_set_alpn_protos(ctx, ALPN_H2, sizeof ALPN_H2 - 1)
               : SSL_CTX_set_alpn_protos(ctx, ALPN, sizeof ALPN - 1)) != 0)
        return -ENOMEM;
    if (o->insecure) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
        SSL_CTX_set_cert_verify_callback(ctx, accept_unverified, NULL);
        return 0;
    }
    const char *cacert = o->cacert;
    int loaded = cacert && *cacert ? SSL_CTX_load_verify_locations(ctx, cacert, NULL)
                                   : SSL_CTX_set_default_verify_paths(ctx);
    if (loaded != 1) return -EINVAL;
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    /* the name (or address) the certificate must carry, set once: SSL_new copies the context's
       verify parameters (ssl/ssl_lib.c: SSL_new -> X509_VERIFY_PARAM_inherit) */
    X509_VERIFY_PARAM *param = SSL_CTX_get0_param(ctx);
    unsigned char addr[16];
    int is_ip = inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if ((is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, host) : X509_VERIFY_PARAM_set1_host(param, host, 0)) != 1)
        return -EINVAL;
    return 0;
}

void tls_fini(core *k) {
    if (k->tls) {
        for (int i = 0; i < k->capacity; i++) {
            SSL_free(k->tls[i].ssl);  /* none left open normally */
            SSL_free(k->tls[i].spare);
        }
        free(k->tls);
        k->tls = NULL;
    }
    SSL_SESSION_free(k->tls_session);
    k->tls_session = NULL;
    SSL_CTX_free(k->tls_ctx);
    k->tls_ctx = NULL;
    free(k->tls_host);
    k->tls_host = NULL;
}

static tls_conn *state(core *k, const conn *c) { return &k->tls[c - k->conns]; }

/* During the handshake only: the header of the first record the peer sent (ssl/record/ssl3_record.c:
   ssl3_get_record hands each header to the message callback before checking its version), so a peer
   that answers the ClientHello with HTTP is told from one that speaks broken TLS. */
static void first_header(int write_p, int version, int content_type, const void *buf, size_t len, SSL *ssl,
                         void *arg) {
    (void)version;
    (void)ssl;
    tls_conn *t = arg;
    if (write_p || content_type != SSL3_RT_HEADER || t->first_len) return;
    t->first_len = (uint8_t)(len < sizeof t->first ? len : sizeof t->first);
    memcpy(t->first, buf, t->first_len);
}

/* Each read OpenSSL makes of the socket (the socket BIO SSL_set_fd made, BIO_s_socket: read(2) as
   asked): whether it came back short, i.e. took all the receive queue held, or found it empty (EAGAIN,
   or the EOF and errors that end the connection). Every other operation passes through untouched: a
   callback returns what it is given (crypto/bio/bio_lib.c: bio_call_callback). */
static long on_bio(BIO *b, int oper, const char *argp, size_t len, int argi, long argl, int ret, size_t *processed) {
    (void)argp;
    (void)argi;
    (void)argl;
    if (oper == (BIO_CB_READ | BIO_CB_RETURN)) {
        tls_conn *t = (tls_conn *)BIO_get_callback_arg(b);
        if (t) t->drained = ret <= 0 || !processed || *processed < len;
    }
    return ret;
}

int tls_begin(core *k, conn *c) {
    tls_conn *t = state(k, c);
    SSL *ssl = t->spare;
    SSL_free(t->ssl);  /* none: the slot's last connection freed or kept its own */
    memset(t, 0, sizeof *t);
    /* The slot's last SSL, reset, rather than a new one, as wrk does (src/ssl.c: ssl_close ->
       SSL_clear): SSL_new copies the context's certificate state, cipher lists and verify parameters
       and SSL_free frees them and the record buffers, once a connection. SSL_clear keeps the last
       session (ssl/ssl_lib.c, OpenSSL 3.0), so it is replaced: by the one --tls-resume keeps, or by
       none, so that a full handshake offers nothing to resume, as from a new SSL. */
    if (ssl && (SSL_clear(ssl) != 1 || SSL_set_session(ssl, k->tls_resume ? k->tls_session : NULL) != 1)) {
        SSL_free(ssl);
        ssl = NULL;
    }
    errors_clear();
    if (!ssl) ssl = SSL_new(k->tls_ctx);
    if (!ssl) return -ENOMEM;
    t->ssl = ssl;
    unsigned char addr[16];
    /* SNI carries a host name, never an address (RFC 6066 section 3) */
    if (inet_pton(AF_INET, k->tls_host, addr) != 1 && inet_pton(AF_INET6, k->tls_host, addr) != 1)
        SSL_set_tlsext_host_name(ssl, k->tls_host);
    if (SSL_set_fd(ssl, c->fd) != 1) return -ENOMEM;
    BIO *bio = SSL_get_rbio(ssl);  /* the one socket BIO, read and write */
    BIO_set_callback_arg(bio, (char *)t);
    BIO_set_callback_ex(bio, on_bio);
    SSL_set_app_data(ssl, t);  /* on_info's way to the connection */
    if (k->tls_resume && k->tls_session && SSL_get_session(ssl) != k->tls_session &&
        SSL_set_session(ssl, k->tls_session) != 1)
        return -ENOMEM;
    SSL_set_msg_callback(ssl, first_header);
    SSL_set_msg_callback_arg(ssl, t);
    SSL_set_connect_state(ssl);
    t->phase = TLS_HANDSHAKE;
    return 0;
}

/* every printable: the peer spoke text (HTTP) where a TLS record header belongs */
static int is_text(const tls_conn *t) {
    if (!t->first_len) return 0;
    for (int i = 0; i < t->first_len; i++)
        if (t->first[i] < 0x20 || t->first[i] > 0x7e) return 0;
    return 1;
}

/* An SSL call failed with SSL_get_error's `err`: the error slot to count (errno, E_TLS_*, or the peer's
   alert's E_TLS_ALERT + i). */
static int failure(core *k, tls_conn *t, int err) {
    int saved = errno;
    unsigned long e = ERR_peek_error();
    int reason = ERR_GET_REASON(e);
    int after = t->phase == TLS_OPEN || t->phase == TLS_PEER_DONE;  /* the handshake was done */
    t->phase = TLS_BROKEN;  /* no close_notify after a fatal error (SSL_shutdown(3)) */
    if (err == SSL_ERROR_SYSCALL && e == 0) {
        ERR_clear_error();
        return saved ? saved : E_TLS_UNEXPECTED_EOF;  /* EOF that OpenSSL did not name (1.1 style) */
    }
    if (err == SSL_ERROR_ZERO_RETURN) return E_TLS_UNEXPECTED_EOF;  /* close_notify mid-handshake */
    int slot = after ? E_TLS_ERROR : E_TLS_HANDSHAKE_FAILED;
    if (is_text(t)) {
        char shown[sizeof t->first + 1];
        memcpy(shown, t->first, t->first_len);
        shown[t->first_len] = 0;
        char detail[64];
        snprintf(detail, sizeof detail, "the peer answered the ClientHello with \"%s\"", shown);
        keep_reason(k, "not TLS", detail);
        slot = E_TLS_ON_PLAIN_HTTP;
    } else if (t->alert) {
        slot = alert_slot(t->alert);  /* the peer said why: tls_alert_<name> */
    } else if (reason == SSL_R_CERTIFICATE_VERIFY_FAILED) {
        keep_reason(k, "certificate verify failed", X509_verify_cert_error_string(SSL_get_verify_result(t->ssl)));
        slot = E_TLS_CERT_VERIFY_FAILED;
#ifdef SSL_R_UNEXPECTED_EOF_WHILE_READING
    } else if (reason == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
        slot = E_TLS_UNEXPECTED_EOF;
#endif
    } else {
        const char *text = ERR_reason_error_string(e);
        keep_reason(k, after ? "TLS error after the handshake" : "handshake failed", text ? text : "unknown");
    }
    ERR_clear_error();
    return slot;
}

int tls_handshake(core *k, conn *c, int64_t now) {
    tls_conn *t = state(k, c);
    /* the first call comes with the connection's first EPOLLOUT: the TCP connect is done (over
       loopback the server's whole first flight may be back before SSL_connect's first read, so the
       handshake can end in this very call) */
    if (!t->t_tcp) t->t_tcp = now;
    errors_clear();
    errno = 0;
    int r = SSL_connect(t->ssl);
    if (r == 1) {
        SSL_set_msg_callback(t->ssl, NULL);
        t->phase = TLS_OPEN;
        k->stats[S_TLS_HANDSHAKES]++;
        if (SSL_session_reused(t->ssl)) k->stats[S_TLS_RESUMED]++;
        /* the handshake's last flight (Finished) is a small segment the server has not acknowledged yet,
           and the request written next is small too: Nagle holds it until that ACK (Linux's Minshall
           variant: net/ipv4/tcp_output.c, tcp_nagle_check -> tcp_minshall_check), which a server with
           nothing to send back (a resumed TLS 1.3 handshake: no ticket before the request) delays up to
           its delayed-ACK timeout (40 ms). wrk sets TCP_NODELAY on every socket */
        core_nodelay(c);
        return 1;
    }
    int err = SSL_get_error(t->ssl, r);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return 0;
    return -failure(k, t, err);
}

int64_t tls_tcp_done(core *k, const conn *c) { return k->tls[c - k->conns].t_tcp; }

/* tls_conn.notified: 1 when TLS_NOTIFIED was said, this once our close_notify answered it */
#define NOTIFIED_ANSWERED 2

/* How long the peer's FIN may follow its close_notify before our close_notify answers it (tls_answer_close),
   by what the servers met so far did (core.tls_peer_close). A server that waits for our answer (Python's
   asyncio) gets it soon; one that closes without waiting (nginx: its close() follows its close_notify at
   once, but on a busy host it may be descheduled between them for milliseconds) must not get it before
   its FIN, or its close() finds our close_notify unread and resets (net/ipv4/tcp.c: __tcp_close,
   data_was_unread), and --close server loses the server's TIME_WAIT. Until a server has shown which it
   is, the wait is long enough for a busy host; once one closed alone, longer still (it is only there for
   a waiting server among several destinations, which then is slow rather than held to its timeout). */
#define ANSWER_WAITING_NS 2000000LL       /* 2 ms */
#define ANSWER_UNKNOWN_NS 200000000LL     /* 200 ms */
#define ANSWER_CLOSES_ALONE_NS 1000000000LL  /* 1 s */

int64_t tls_answer_delay(const core *k) {
    switch (k->tls_peer_close) {
    case TLS_PEER_WAITS: return ANSWER_WAITING_NS;
    case TLS_PEER_CLOSES_ALONE: return ANSWER_CLOSES_ALONE_NS;
    default: return ANSWER_UNKNOWN_NS;
    }
}

/* The peer's FIN (or its reset, provoked by our answer) after its close_notify: what it says of how
   the server closes (tls_answer_delay). A FIN we had not answered, or a reset of our answer (it
   arrived while the server was closing), is a server that closes alone; a FIN after our answer, while
   nothing says otherwise, one that waited for it. */
static void learn_peer_close(core *k, const tls_conn *t, int reset) {
    if (reset || t->notified != NOTIFIED_ANSWERED) k->tls_peer_close = TLS_PEER_CLOSES_ALONE;
    else if (k->tls_peer_close == TLS_PEER_UNKNOWN) k->tls_peer_close = TLS_PEER_WAITS;
}

/* After the peer's close_notify: the TCP EOF that follows it, read from the socket itself (SSL_read
   would say ZERO_RETURN again without reading), so the connection closes after the server's FIN, as
   over plain TCP, and the server keeps its TIME_WAIT under --close server. Bytes after the
   close_notify are no TLS anybody asked for: dropped. */
static int after_close_notify(core *k, tls_conn *t, conn *c, char *buf, size_t len, int *error) {
    for (;;) {
        ssize_t r = recv(c->fd, buf, len, 0);
        if (r == 0) {
            t->eof = 1;
            learn_peer_close(k, t, 0);
            return TLS_CLOSED;
        }
        if (r > 0) continue;
        if (errno == EINTR) continue;
        if (errno == EAGAIN) {
            if (t->notified) return TLS_WAIT_READ;
            t->notified = 1;
            return TLS_NOTIFIED;  /* no FIN behind it yet: the backend answers later (tls_answer_close) */
        }
        /* A reset after we answered its close_notify: a server that does not wait for our answer
           (nginx), whose FIN came later than tls_answer_delay, closed with our close_notify unread,
           which makes its close a RST (net/ipv4/tcp.c: __tcp_close). The close it announced, then,
           not a reset instead of one. */
        if (errno == ECONNRESET && t->notified == NOTIFIED_ANSWERED) {
            learn_peer_close(k, t, 1);
            return TLS_CLOSED;
        }
        *error = errno;
        return TLS_FAILED;
    }
}

/* A read's failure (slot: failure()'s) as tls_read says it. EOF without close_notify is the plain EOF
   HTTP/1.1 knows (a body delimited by the close still ends there): the caller treats it as the peer's
   close. */
static int read_failed(int slot, int *error) {
    if (slot == E_TLS_UNEXPECTED_EOF) return TLS_CLOSED;
    *error = slot;
    return TLS_FAILED;
}

/* A write's failure as tls_write says it: the same EOF there is the write's EPIPE */
static int write_failed(int slot, int *error) {
    *error = slot == E_TLS_UNEXPECTED_EOF ? EPIPE : slot;
    return TLS_FAILED;
}

/* The records OpenSSL holds already (read-ahead took them off the socket with the one just read) join
   this read, up to len: one call hands the caller every whole response that came together, so HTTP/2
   answers a burst of responses with one write of the next requests rather than one write a record.
   What ends the gathering is said by the next call, not lost: a close_notify by the phase (SSL_read
   would say ZERO_RETURN again, but tls_drained would wait for a socket edge that a server waiting for
   our close_notify never sends), a failure by `held`, its reason taken now (ERR_peek_error). */
static void gather(core *k, tls_conn *t, char *buf, size_t len, size_t *n) {
    while (*n < len && SSL_has_pending(t->ssl)) {
        size_t room = len - *n;
        int r = SSL_read(t->ssl, buf + *n, room > INT32_MAX ? INT32_MAX : (int)room);
        if (r > 0) {
            *n += (size_t)r;
            continue;
        }
        int err = SSL_get_error(t->ssl, r);
        if (err == SSL_ERROR_WANT_READ) return;
        if (err == SSL_ERROR_WANT_WRITE) {  /* (a KeyUpdate's answer held by a full socket) the next call says it */
            t->drained = 0;
            return;
        }
        if (err == SSL_ERROR_ZERO_RETURN) {
            t->phase = TLS_PEER_DONE;  /* the next call reads the FIN behind it (after_close_notify) */
            return;
        }
        t->held_slot = failure(k, t, err);
        t->held = 1;
        return;
    }
}

int tls_read(core *k, conn *c, char *buf, size_t len, size_t *n, int *error) {
    tls_conn *t = state(k, c);
    if (t->held) {  /* the failure behind the last data handed over (gather) */
        t->held = 0;
        return read_failed(t->held_slot, error);
    }
    if (t->phase == TLS_PEER_DONE) return after_close_notify(k, t, c, buf, len, error);
    errors_clear();
    errno = 0;
    int r = SSL_read(t->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
    if (r > 0) {
        *n = (size_t)r;
        gather(k, t, buf, len, n);
        return TLS_DATA;
    }
    int err = SSL_get_error(t->ssl, r);
    switch (err) {
    case SSL_ERROR_WANT_READ:
        return TLS_WAIT_READ;
    case SSL_ERROR_WANT_WRITE:
        return TLS_WAIT_WRITE;
    case SSL_ERROR_ZERO_RETURN:
        t->phase = TLS_PEER_DONE;  /* the peer's close_notify: its FIN is next */
        return after_close_notify(k, t, c, buf, len, error);
    default:
        break;
    }
    return read_failed(failure(k, t, err), error);
}

/* The connection needs no read before the socket's next edge: OpenSSL's last read of it came back
   short (edge-triggered epoll reports anything that arrives after it) and OpenSSL holds nothing it read
   and has not handed over (SSL_has_pending: a record's plaintext, or record bytes not yet processed,
   such as a close_notify behind the response). Read-ahead makes a read take all the queue holds (tls_init);
   without it every read asks for exactly one record's part and would never come back short. */
int tls_drained(const core *k, const conn *c) {
    const tls_conn *t = &k->tls[c - k->conns];
    return t->drained && t->ssl && t->phase == TLS_OPEN && !SSL_has_pending(t->ssl);
}

int tls_write(core *k, conn *c, const char *buf, size_t len, size_t *n, int *error) {
    tls_conn *t = state(k, c);
    if (t->held) {  /* gather met a failure behind the response just handled, and the next request comes
                       first: the failure is why it cannot go (SSL_write on the broken session would say EPIPE) */
        t->held = 0;
        return write_failed(t->held_slot, error);
    }
    errors_clear();
    errno = 0;
    int r = SSL_write(t->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
    if (r > 0) {
        *n = (size_t)r;
        return TLS_DATA;
    }
    int err = SSL_get_error(t->ssl, r);
    if (err == SSL_ERROR_WANT_WRITE) return TLS_WAIT_WRITE;
    if (err == SSL_ERROR_WANT_READ) return TLS_WAIT_READ;
    return write_failed(failure(k, t, err), error);
}

/* c closes (its fd is closed by the caller right after). Its close_notify goes out first when the
   session is whole, the peer has not closed, and the strategy is not rst (SO_LINGER {1,0}: the RST
   alone ends it) nor the run abandoning its connections. When the peer has closed, what it sent
   after the last record read (its close_notify) is drained first: unread bytes at close() turn the
   FIN into a RST (net/ipv4/tcp.c: __tcp_close, data_was_unread), which would take the server's
   TIME_WAIT away under --close server. */
void tls_end(core *k, conn *c) {
    tls_conn *t = state(k, c);
    if (!t->ssl) return;
    int whole = t->phase == TLS_OPEN || t->phase == TLS_PEER_DONE;
    if (whole && k->close_mode != CLOSE_RST && !k->abandoning) {
        if (c->flags & F_PEER_CLOSED) {
            for (int i = 0; i < DRAIN_READS && !t->eof; i++)  /* read to its EOF already: nothing left */
                if (recv(c->fd, k->rbuf, k->rbuf_len, MSG_DONTWAIT) <= 0) break;
        } else if (t->phase == TLS_OPEN) {
            /* close_notify and the FIN leave in one segment: corked, the close_notify waits in the
               queue and shutdown() sets FIN on that last unsent skb and pushes it (net/ipv4/tcp_output.c,
               Linux 6.x: tcp_send_fin). Sent apart (the fd is closed only at the end of the turn, and even
               a shutdown() right after the write was too late for nginx on another CPU in 117 of 200
               connections), a server that closes on reading the close_notify closed first and took the
               TIME_WAIT that --close fin leaves with the client. */
            int one = 1;
            setsockopt(c->fd, IPPROTO_TCP, TCP_CORK, &one, sizeof one);
            errors_clear();
            SSL_shutdown(t->ssl);  /* sends close_notify; the peer's answer is not waited for */
            shutdown(c->fd, SHUT_WR);
        }
    }
    /* --tls-resume: a whole session stays resumable however the connection ends. SSL_free and SSL_clear
       mark the session of an SSL that sent no close_notify as bad (ssl/ssl_lib.c: ssl_clear_bad_session ->
       SSL_CTX_remove_session, which sets not_resumable), and that session is the one kept in
       k->tls_session; the flag alone says "sent" without sending anything (SSL_set_shutdown(3)) */
    if (whole && k->tls_resume) SSL_set_shutdown(t->ssl, SSL_get_shutdown(t->ssl) | SSL_SENT_SHUTDOWN);
    errors_clear();
    /* a whole session's SSL waits for the slot's next connection (tls_begin resets it); one that failed
       goes, lest a reset carry its state over */
    SSL *keep = whole ? t->ssl : NULL;
    if (!whole) SSL_free(t->ssl);
    SSL_free(t->spare);  /* none: tls_begin took it */
    memset(t, 0, sizeof *t);
    t->spare = keep;
}

/* The peer's close_notify came a while ago and its FIN has not: it waits for ours before it closes
   (Python's asyncio does, up to ssl_shutdown_timeout; nginx does not wait, and its FIN follows its
   close_notify at once). Answering at once instead raced that FIN: our close_notify reaching a socket
   the server has closed gets a RST back (net/ipv4/tcp_input.c: tcp_rcv_state_process, data after
   RCV_SHUTDOWN on an orphan: tcp_reset), which takes the server's TIME_WAIT away. */
void tls_answer_close(core *k, conn *c) {
    tls_conn *t = state(k, c);
    if (!t->ssl || t->phase != TLS_PEER_DONE) return;
    errors_clear();
    SSL_shutdown(t->ssl);
    errors_clear();
    t->notified = NOTIFIED_ANSWERED;
}

/* --http2: the handshake's ALPN picked h2 (RFC 9113 section 3.2). The client offers h2 alone; a server
   that picks nothing (or, against RFC 7301, something else) speaks HTTP/1.1 at best, and the run
   asked for HTTP/2: the connection fails (h2_not_negotiated) rather than measure another protocol
   under its name; the reason is said once. */
int tls_alpn_h2(core *k, conn *c) {
    const unsigned char *proto = NULL;
    unsigned int len = 0;
    SSL_get0_alpn_selected(state(k, c)->ssl, &proto, &len);
    if (len == 2 && memcmp(proto, "h2", 2) == 0) return 1;
    char picked[32];
    snprintf(picked, sizeof picked, "%.*s", (int)(len < 24 ? len : 24), proto ? (const char *)proto : "");
    keep_reason(k, "the server did not pick h2 by ALPN", len ? picked : "it picked no protocol (HTTP/1.1)");
    return 0;
}

/* tls_reason() for Python: the first TLS failure's reason, once */
const char *tls_take_reason(core *k, int *len) {
    if (k->tls_reason_len <= 0) {
        *len = 0;
        return NULL;
    }
    *len = k->tls_reason_len;
    k->tls_reason_len = -1;
    return k->tls_reason;
}
