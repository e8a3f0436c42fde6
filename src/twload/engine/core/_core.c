/* twload.engine.core._core: the CPython face of one worker's compiled loop.
 *
 * Core(...) holds a worker's connections; run(until_ns) runs the loop with the GIL released
 * until then (or until nothing is left to do); collect() copies the interval's counters and
 * histogram counts into buffers Python owns and zeroes them. No Python object per request.
 */
#define PY_SSIZE_T_CLEAN
#define _GNU_SOURCE
#include <Python.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "h2.h"

typedef struct {
    PyObject_HEAD
    core *k;
    int started;
} CoreObject;

static int parse_address(const char *host, int port, unsigned scope_id, struct sockaddr_storage *out, socklen_t *len) {
    memset(out, 0, sizeof *out);
    struct sockaddr_in *v4 = (struct sockaddr_in *)out;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)out;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        *len = sizeof *v4;
        return 0;
    }
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        v6->sin6_scope_id = scope_id;
        *len = sizeof *v6;
        return 0;
    }
    PyErr_Format(PyExc_ValueError, "not a numeric IP address: %s", host);
    return -1;
}

static char *copy_bytes(const char *data, Py_ssize_t len) {
    char *out = malloc(len ? (size_t)len : 1);
    if (out) memcpy(out, data, (size_t)len);
    return out;
}

/* targets: a sequence of (group, head, upgrade, plain, last, ops, body_start), ops a sequence of
   (kind, data, arg) (engine/request_set.py); order: int32 target indexes (array('i')). Copied into
   k->targets; on failure what was copied is freed by core_fini (through core_targets_fini). */
static int load_targets(core *k, PyObject *targets, Py_buffer *order, int groups) {
    PyObject *seq = PySequence_Fast(targets, "targets must be a sequence");
    if (!seq) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (n < 1 || n > INT32_MAX || !order->buf || order->len < (Py_ssize_t)sizeof(int32_t) ||
        order->len % (Py_ssize_t)sizeof(int32_t) || order->len / (Py_ssize_t)sizeof(int32_t) > UINT32_MAX ||
        groups < 1 || groups > MAX_GROUPS) {
        Py_DECREF(seq);
        PyErr_SetString(PyExc_ValueError, "targets need an order (int32 indexes) and 1..256 groups");
        return -1;
    }
    k->targets = calloc((size_t)n, sizeof *k->targets);
    k->order = malloc((size_t)order->len);
    if (!k->targets || !k->order) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        return -1;
    }
    k->n_targets = (int)n;
    memcpy(k->order, order->buf, (size_t)order->len);
    k->order_len = (uint32_t)(order->len / (Py_ssize_t)sizeof(int32_t));
    k->n_groups = groups;
    int ok = -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        req_target *t = &k->targets[i];
        int group, head, upgrade, dest = 0;
        unsigned body_start;
        Py_buffer plain = {0}, last = {0};
        PyObject *ops = NULL;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(seq, i), "ippy*y*OI|i", &group, &head, &upgrade, &plain, &last,
                              &ops, &body_start, &dest))
            goto done;
        t->group = group;
        t->dest = dest;
        t->head = (uint8_t)head;
        t->asks_upgrade = (uint8_t)upgrade;
        t->body_start = body_start;
        t->plain = copy_bytes(plain.buf, plain.len);
        t->last = copy_bytes(last.buf, last.len);
        t->plain_len = (uint32_t)plain.len;
        t->last_len = (uint32_t)last.len;
        int bad = plain.len > (Py_ssize_t)UINT32_MAX || last.len > (Py_ssize_t)UINT32_MAX;
        PyBuffer_Release(&plain);
        PyBuffer_Release(&last);
        if (!t->plain || !t->last) {
            PyErr_NoMemory();
            goto done;
        }
        PyObject *opseq = PySequence_Fast(ops, "ops must be a sequence");
        if (!opseq) goto done;
        Py_ssize_t n_ops = PySequence_Fast_GET_SIZE(opseq), pool_len = 0;
        if (bad || n_ops > UINT32_MAX || body_start > (size_t)n_ops) {
            Py_DECREF(opseq);
            PyErr_SetString(PyExc_ValueError, "a bad target (its size, or body_start past its ops)");
            goto done;
        }
        for (Py_ssize_t j = 0; j < n_ops; j++) {  /* the literals' total, for one pool */
            PyObject *op = PySequence_Fast_GET_ITEM(opseq, j);
            PyObject *data = PyTuple_Check(op) && PyTuple_GET_SIZE(op) == 3 ? PyTuple_GET_ITEM(op, 1) : NULL;
            if (!data || !PyBytes_Check(data) || PyBytes_GET_SIZE(data) > MAX_RENDER) {
                Py_DECREF(opseq);
                PyErr_SetString(PyExc_ValueError, "an op is (kind, bytes of at most 1 MiB, arg)");
                goto done;
            }
            pool_len += PyBytes_GET_SIZE(data);
        }
        t->ops = calloc(n_ops ? (size_t)n_ops : 1, sizeof *t->ops);
        t->pool = malloc(pool_len ? (size_t)pool_len : 1);
        if (!t->ops || !t->pool) {
            Py_DECREF(opseq);
            PyErr_NoMemory();
            goto done;
        }
        t->n_ops = (uint32_t)n_ops;
        char *at = t->pool;
        for (Py_ssize_t j = 0; j < n_ops; j++) {
            int kind;
            const char *data;
            Py_ssize_t len;
            unsigned long long arg;
            if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(opseq, j), "iy#K", &kind, &data, &len, &arg)) {
                Py_DECREF(opseq);
                goto done;
            }
            if (kind < 0 || kind >= N_TPL_OPS) {
                Py_DECREF(opseq);
                PyErr_Format(PyExc_ValueError, "unknown template op %d", kind);
                goto done;
            }
            memcpy(at, data, (size_t)len);
            t->ops[j] = (tpl_op){.kind = (uint8_t)kind, .len = (uint32_t)len, .arg = arg, .data = at};
            at += len;
        }
        Py_DECREF(opseq);
    }
    ok = 0;
done:
    Py_DECREF(seq);
    return ok;
}

/* destinations: a sequence of (host, port, scope_id, order_start, order_len), each a destination's
   address and its part of the order (engine/request_set.py); checked by core_targets_init */
static int load_destinations(core *k, PyObject *destinations) {
    PyObject *seq = PySequence_Fast(destinations, "destinations must be a sequence");
    if (!seq) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (n < 1 || n > MAX_DESTS) {
        Py_DECREF(seq);
        PyErr_Format(PyExc_ValueError, "1 to %d destinations", MAX_DESTS);
        return -1;
    }
    k->dests = calloc((size_t)n, sizeof *k->dests);
    if (!k->dests) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        return -1;
    }
    k->n_dests = (int)n;
    int ok = 0;
    for (Py_ssize_t i = 0; i < n && ok == 0; i++) {
        const char *host;
        int port;
        unsigned scope_id, start, len;
        destination *d = &k->dests[i];
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(seq, i), "siIII", &host, &port, &scope_id, &start, &len) ||
            parse_address(host, port, scope_id, &d->addr, &d->addr_len) < 0) {
            ok = -1;
            break;
        }
        d->order_start = start;
        d->order_len = len;
    }
    Py_DECREF(seq);
    return ok;
}

/* collect_destinations() -> [opened, ...]: connections opened to each destination since the last call */
static PyObject *Core_collect_destinations(CoreObject *self, PyObject *Py_UNUSED(ignored)) {
    core *k = self->k && self->k->conns ? self->k : NULL;
    if (!k) {
        PyErr_SetString(PyExc_RuntimeError, "Core is not initialised");
        return NULL;
    }
    PyObject *out = PyList_New(k->n_dests);
    if (!out) return NULL;
    for (int d = 0; d < k->n_dests; d++) {
        PyObject *v = PyLong_FromLongLong(k->dests[d].opened);
        if (!v) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, d, v);
        k->dests[d].opened = 0;
    }
    return out;
}

/* counts[0, n)'s non-zero span as (low, the int64 counts of [low, last non-zero] in bytes, their sum): what
   metrics.IndexCountsEncoder copies into an HdrHistogram's counts in one go (the sum is its total count,
   added here: summed in Python, a PyLong a slot); (0, b"", 0) when all are 0 */
static PyObject *counts_span(const int64_t *counts, int n) {
    int low = 0, end = n;
    while (low < n && !counts[low]) low++;
    if (low == n) return Py_BuildValue("(iy#L)", 0, "", (Py_ssize_t)0, 0LL);
    while (!counts[end - 1]) end--;
    long long total = 0;
    for (int i = low; i < end; i++) total += counts[i];
    return Py_BuildValue("(iy#L)", low, (const char *)(counts + low), (Py_ssize_t)sizeof(int64_t) * (end - low),
                         total);
}

/* collect_targets() -> [(group, requests, sum_latency_us, {status: n}, {error slot: n}, counts_span)]:
   the groups counted in since the last call, their counts then zeroed */
static PyObject *Core_collect_targets(CoreObject *self, PyObject *Py_UNUSED(ignored)) {
    core *k = self->k && self->k->conns ? self->k : NULL;
    if (!k) {
        PyErr_SetString(PyExc_RuntimeError, "Core is not initialised");
        return NULL;
    }
    PyObject *out = PyList_New(0);
    if (!out) return NULL;
    for (int g = 0; g < k->n_groups; g++) {
        if (!k->gtouched[g]) continue;
        int64_t *row = k->gstats + (size_t)g * G_LEN;
        int64_t *hist = k->ghist + (size_t)g * H_LEN;
        PyObject *status = PyDict_New(), *errors = PyDict_New(), *span = counts_span(hist, H_LEN), *item = NULL;
        int failed = !status || !errors || !span;
        struct { PyObject *dict; const int64_t *values; int n; } parts[] = {
            {status, row + G_STATUS, N_STATUS}, {errors, row + G_ERRORS, N_ERRORS}};
        for (size_t p = 0; p < 2 && !failed; p++)
            for (int i = 0; i < parts[p].n && !failed; i++) {
                if (!parts[p].values[i]) continue;
                PyObject *key = PyLong_FromLong(i), *value = PyLong_FromLongLong(parts[p].values[i]);
                failed = !key || !value || PyDict_SetItem(parts[p].dict, key, value) < 0;
                Py_XDECREF(key);
                Py_XDECREF(value);
            }
        if (!failed) item = Py_BuildValue("(iLLOOO)", g, (long long)row[G_REQUESTS], (long long)row[G_SUM_LATENCY],
                                          status, errors, span);
        Py_XDECREF(status);
        Py_XDECREF(errors);
        Py_XDECREF(span);
        if (!item || PyList_Append(out, item) < 0) {
            Py_XDECREF(item);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(item);
        memset(row, 0, sizeof(int64_t) * G_LEN);
        memset(hist, 0, sizeof(int64_t) * H_LEN);
        k->gtouched[g] = 0;
    }
    return out;
}

static int Core_init(CoreObject *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"host", "port", "request", "last_request", "close", "per_connection", "budget",
                             "head", "timeout_ns", "connect_timeout_ns", "sources", "source_start", "capacity",
                             "open_loop", "staged", "io", "max_head", "scope_id", "tls", "server_name",
                             "cacert", "insecure", "targets", "order", "order_random", "seed", "worker", "workers",
                             "groups", "destinations", "slot_dests", "http2", "h2_headers", "h2_body", "tls_min",
                             "ciphers", "ciphersuites", "tls_resume", "dest_cycle", "spool", NULL};
    const char *host = NULL, *io = "epoll", *server_name = NULL, *cacert = NULL;
    const char *tls_min = NULL, *ciphers = NULL, *ciphersuites = NULL;
    int tls = 0, insecure = 0, tls_resume = 0, http2 = 0;  /* http2: streams per connection (0: HTTP/1.1) */
    int port, close_mode = CLOSE_KEEPALIVE, head = 0, open_loop = 0, staged = 0, source_start = 0, capacity = 1;
    unsigned per_connection = 0, max_head = 65536, scope_id = 0;
    long long budget = -1, timeout_ns = 10000000000LL, connect_timeout_ns = 5000000000LL;
    Py_buffer request = {0}, last_request = {0}, order = {0}, slot_dests = {0}, h2_headers = {0}, h2_body = {0};
    Py_buffer dest_cycle = {0};
    PyObject *sources = NULL, *targets = NULL, *destinations = NULL, *spool = NULL;
    int order_random = 0, groups = 0;
    unsigned long long seed = 0;
    unsigned worker = 0, workers = 1;
    if (self->k) {
        PyErr_SetString(PyExc_RuntimeError, "Core is already initialised");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|$siy*y*iILpLLOiippsIIpzzpOy*pKIIiOy*iy*y*zzzpy*O", kwlist, &host,
                                     &port, &request, &last_request, &close_mode, &per_connection, &budget, &head,
                                     &timeout_ns, &connect_timeout_ns, &sources, &source_start, &capacity,
                                     &open_loop, &staged, &io, &max_head, &scope_id, &tls, &server_name, &cacert,
                                     &insecure, &targets, &order, &order_random, &seed, &worker, &workers, &groups,
                                     &destinations, &slot_dests, &http2, &h2_headers, &h2_body, &tls_min, &ciphers,
                                     &ciphersuites, &tls_resume, &dest_cycle, &spool))
        return -1;
    int ok = -1;
    if (!host || !request.obj || !last_request.obj || !sources) {
        PyErr_SetString(PyExc_TypeError, "Core needs host, request, last_request and sources");
        goto out;
    }
    core *k = calloc(1, sizeof *k);
    if (!k) {
        PyErr_NoMemory();
        goto out;
    }
    self->k = k;
    if (capacity < 1 || close_mode < CLOSE_KEEPALIVE || close_mode > CLOSE_RST) {
        PyErr_SetString(PyExc_ValueError, "capacity must be >= 1 and close one of 0..3");
        goto out;
    }
    if (strcmp(io, "epoll") == 0) {
        k->io = &epoll_backend;
#ifdef TWLOAD_HAVE_URING
    } else if (strcmp(io, "uring") == 0) {
        k->io = &uring_backend;
#endif
    } else {
        PyErr_Format(PyExc_ValueError, "I/O backend %s is not available in this build", io);
        goto out;
    }
    if (parse_address(host, port, scope_id, &k->target, &k->target_len) < 0) goto out;
    k->request = copy_bytes(request.buf, request.len);
    k->last_request = copy_bytes(last_request.buf, last_request.len);
    if (!k->request || !k->last_request) {
        PyErr_NoMemory();
        goto out;
    }
    k->request_len = (uint32_t)request.len;
    k->last_request_len = (uint32_t)last_request.len;
    k->close_mode = close_mode;
    k->per_connection = per_connection;
    k->budget = budget;
    k->head_request = head;
    k->max_head = max_head;
    k->timeout_ns = timeout_ns;
    k->connect_timeout_ns = connect_timeout_ns;
    k->open_loop = open_loop;
    k->staged = staged;
    PyObject *seq = PySequence_Fast(sources, "sources must be a sequence of addresses");
    if (!seq) goto out;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (n > 0) {
        k->sources = calloc((size_t)n, sizeof *k->sources);
        k->source_lens = calloc((size_t)n, sizeof *k->source_lens);
        if (!k->sources || !k->source_lens) {
            Py_DECREF(seq);
            PyErr_NoMemory();
            goto out;
        }
        for (Py_ssize_t i = 0; i < n; i++) {
            const char *address = PyUnicode_AsUTF8(PySequence_Fast_GET_ITEM(seq, i));
            if (!address || parse_address(address, 0, 0, &k->sources[i], &k->source_lens[i]) < 0) {
                Py_DECREF(seq);
                goto out;
            }
        }
        k->n_sources = (int)n;
        k->next_source = source_start % (int)n;
    }
    Py_DECREF(seq);
    if (tls && k->io != &epoll_backend) {  /* issue #30: TLS over the ring is not built yet */
        PyErr_SetString(PyExc_ValueError, "https runs on the epoll backend only");
        goto out;
    }
    k->capacity = capacity;  /* tls_init and h2_init size their per-slot state by it */
    if (http2) {  /* before tls_init: its ALPN offers h2 then */
        if (k->io != &epoll_backend || (staged && !open_loop)) {
            PyErr_SetString(PyExc_ValueError, "HTTP/2 runs on the epoll backend, and not with staged connections");
            goto out;
        }
        int h = h2_init(k, http2, h2_headers.obj ? h2_headers.buf : "", h2_headers.obj ? (size_t)h2_headers.len : 0,
                        h2_body.obj ? h2_body.buf : "", h2_body.obj ? (size_t)h2_body.len : 0);
        if (h == -EINVAL) {
            PyErr_Format(PyExc_ValueError, "http2: streams must be 1..%d and h2_headers name\\0value\\0 pairs",
                         H2_MAX_STREAMS);
            goto out;
        }
        if (h < 0) {
            PyErr_NoMemory();
            goto out;
        }
    }
    if (tls) {
        tls_options o = {.cacert = cacert, .insecure = insecure, .min_version = tls_min, .ciphers = ciphers,
                         .ciphersuites = ciphersuites, .resume = tls_resume};
        char why[160];
        const char *bad = tls_check(&o, why, sizeof why);
        if (bad) {
            PyErr_SetString(PyExc_ValueError, bad);
            goto out;
        }
        int t = tls_init(k, server_name ? server_name : host, &o);
        if (t == -EINVAL) {
            PyErr_Format(PyExc_ValueError, "cannot load --cacert %s", cacert ? cacert : "");
            goto out;
        }
        if (t < 0) {
            PyErr_NoMemory();
            goto out;
        }
    }
    if (targets && targets != Py_None) {
        if (load_targets(k, targets, &order, groups) < 0) goto out;
        if (destinations && destinations != Py_None) {
            /* several destinations: one uint16 destination index per slot (capacity of them) */
            if (load_destinations(k, destinations) < 0) goto out;
            if (!slot_dests.buf || slot_dests.len != (Py_ssize_t)sizeof(uint16_t) * capacity) {
                PyErr_SetString(PyExc_ValueError, "slot_dests: one uint16 destination index per slot");
                goto out;
            }
            if (open_loop) {  /* each due request's destination: uint16 indexes, the weights as repeats */
                if (!dest_cycle.buf || dest_cycle.len < (Py_ssize_t)sizeof(uint16_t) ||
                    dest_cycle.len % (Py_ssize_t)sizeof(uint16_t) ||
                    dest_cycle.len / (Py_ssize_t)sizeof(uint16_t) > UINT32_MAX) {
                    PyErr_SetString(PyExc_ValueError, "dest_cycle: uint16 destination indexes (open loop)");
                    goto out;
                }
                k->dest_cycle = malloc((size_t)dest_cycle.len);
                if (!k->dest_cycle) {
                    PyErr_NoMemory();
                    goto out;
                }
                memcpy(k->dest_cycle, dest_cycle.buf, (size_t)dest_cycle.len);
                k->dest_cycle_len = (uint32_t)(dest_cycle.len / (Py_ssize_t)sizeof(uint16_t));
            }
        }
        k->order_random = order_random;
        k->rng_order = seed ^ (0x9e3779b97f4a7c15ULL * (worker + 1));  /* each worker its own streams */
        k->rng_values = seed ^ (0xd1b54a32d192ed03ULL * (worker + 1));
        k->worker = worker;
        k->workers = workers ? workers : 1;
        int t = core_targets_init(k);
        if (t == -E2BIG) {
            PyErr_Format(PyExc_ValueError, "a templated request may render to more than %u bytes", MAX_RENDER);
            goto out;
        }
        if (t == -ENOBUFS) {
            PyErr_Format(PyExc_ValueError, "templated requests for %d connections need more than %u MiB of buffers",
                         capacity, MAX_RENDER_TOTAL >> 20);
            goto out;
        }
        if (t == -EINVAL) {
            PyErr_SetString(PyExc_ValueError, "a bad request set (targets, order or groups)");
            goto out;
        }
        if (t < 0) {
            PyErr_NoMemory();
            goto out;
        }
        if (k->h2) {  /* --http2: each target's header block and body as its streams send them */
            int h = h2_targets_init(k);
            if (h == -ENOBUFS) {
                PyErr_Format(PyExc_ValueError, "templated bodies for %d connections x %d streams need more than "
                             "%u MiB of buffers", capacity, http2, MAX_RENDER_TOTAL >> 20);
                goto out;
            }
            if (h == -EINVAL) {
                PyErr_SetString(PyExc_ValueError, "http2: a target that is no header block (name\\0value\\0 pairs), "
                                "or targets on several destinations");
                goto out;
            }
            if (h < 0) {
                PyErr_NoMemory();
                goto out;
            }
        }
    }
    if (spool && spool != Py_None) {
        /* a streamed request set: (fd, its size, targets a page, the longest templated request, groups);
           the core owns the fd from here (core_targets_fini closes it) */
        int fd, groups_n;
        unsigned long long size;
        unsigned page, render_max;
        if (targets && targets != Py_None) {
            PyErr_SetString(PyExc_ValueError, "give targets or spool, not both");
            goto out;
        }
        if (!PyArg_ParseTuple(spool, "iKIIi", &fd, &size, &page, &render_max, &groups_n)) goto out;
        k->paged = 1;
        k->spool_fd = fd;
        k->spool_len = size;
        k->page_cap = page;
        k->render_max = render_max;
        k->n_groups = groups_n;
        k->rng_values = seed ^ (0xd1b54a32d192ed03ULL * (worker + 1));
        k->worker = worker;
        k->workers = workers ? workers : 1;
        int t = core_spool_init(k);
        if (t < 0) {
            if (t == -ENOMEM) PyErr_NoMemory();
            else if (t == -ENOBUFS)
                PyErr_Format(PyExc_ValueError, "templated requests for %d connections need more than %u MiB of buffers",
                             capacity, MAX_RENDER_TOTAL >> 20);
            else if (t == -EINVAL || t == -E2BIG) PyErr_SetString(PyExc_ValueError, "a bad spool (its records or sizes)");
            else {
                errno = -t;
                PyErr_SetFromErrno(PyExc_OSError);
            }
            goto out;
        }
    }
    int r = core_init(k, capacity);
    if (r < 0) {
        errno = -r;
        PyErr_SetFromErrno(PyExc_OSError);
        goto out;
    }
    if (k->n_dests) {  /* each slot's destination, for good (the slots split across them by weight) */
        const uint16_t *dests = slot_dests.buf;
        for (int i = 0; i < capacity; i++) {
            if (dests[i] >= k->n_dests) {
                PyErr_SetString(PyExc_ValueError, "slot_dests: a destination index out of range");
                goto out;
            }
            k->conns[i].dest = dests[i];
        }
        r = core_lanes_init(k);  /* open loop: each destination's lane, over its slots */
        if (r == -EINVAL) {
            PyErr_SetString(PyExc_ValueError, "open loop: every destination needs a slot, and dest_cycle in range");
            goto out;
        }
        if (r < 0) {
            PyErr_NoMemory();
            goto out;
        }
    }
    ok = 0;
out:
    PyBuffer_Release(&dest_cycle);
    PyBuffer_Release(&slot_dests);
    PyBuffer_Release(&request);
    PyBuffer_Release(&last_request);
    PyBuffer_Release(&order);
    PyBuffer_Release(&h2_headers);
    PyBuffer_Release(&h2_body);
    return ok;
}

static void Core_dealloc(CoreObject *self) {
    if (self->k) {
        core_fini(self->k);
        tls_fini(self->k);  /* after core_fini: its closes end each connection's SSL */
        h2_fini(self->k);   /* after core_fini too: its closes settle each connection's streams */
        free(self->k);
    }
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static core *ready_core(CoreObject *self) {
    if (!self->k || !self->k->conns) PyErr_SetString(PyExc_RuntimeError, "Core is not initialised");
    return self->k && self->k->conns ? self->k : NULL;
}

static PyObject *Core_start(CoreObject *self, PyObject *args) {
    long long started_ns;
    int connections;
    core *k = ready_core(self);
    if (!k || !PyArg_ParseTuple(args, "Li", &started_ns, &connections)) return NULL;
    if (self->started) {
        PyErr_SetString(PyExc_RuntimeError, "Core already started");
        return NULL;
    }
    self->started = 1;
    core_start(k, started_ns, connections);
    Py_RETURN_NONE;
}

static PyObject *Core_run(CoreObject *self, PyObject *args) {
    long long until;
    core *k = ready_core(self);
    if (!k || !PyArg_ParseTuple(args, "L", &until)) return NULL;
    int r;
    Py_BEGIN_ALLOW_THREADS
    r = core_run(k, until);
    Py_END_ALLOW_THREADS
    if (r < 0) {
        errno = -r;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return PyBool_FromLong(r);
}

static PyObject *Core_set_connections(CoreObject *self, PyObject *args) {
    int n;
    core *k = ready_core(self);
    if (!k || !PyArg_ParseTuple(args, "i", &n)) return NULL;
    core_set_connections(k, n < 0 ? 0 : n);
    Py_RETURN_NONE;
}

static PyObject *Core_add_due(CoreObject *self, PyObject *args) {
    Py_buffer times;
    core *k = ready_core(self);
    if (!k || !PyArg_ParseTuple(args, "y*", &times)) return NULL;
    if (times.len % (Py_ssize_t)sizeof(int64_t)) {
        PyBuffer_Release(&times);
        PyErr_SetString(PyExc_ValueError, "add_due takes int64 send times (array('q'))");
        return NULL;
    }
    int r = core_add_due(k, times.buf, (size_t)times.len / sizeof(int64_t));
    PyBuffer_Release(&times);
    if (r < 0) return PyErr_NoMemory();
    Py_RETURN_NONE;
}

static PyObject *Core_schedule_done(CoreObject *self, PyObject *Py_UNUSED(ignored)) {
    core *k = ready_core(self);
    if (!k) return NULL;
    k->schedule_done = 1;
    Py_RETURN_NONE;
}

static PyObject *Core_stop(CoreObject *self, PyObject *Py_UNUSED(ignored)) {
    core *k = ready_core(self);
    if (!k) return NULL;
    core_stop(k);
    Py_RETURN_NONE;
}

static PyObject *Core_abandon(CoreObject *self, PyObject *Py_UNUSED(ignored)) {
    core *k = ready_core(self);
    if (!k) return NULL;
    core_abandon(k);
    Py_RETURN_NONE;
}

/* collect(stats) -> ((low, counts, total) for latency, connect, service, tls): stats, a writable int64 buffer
   (array('q')) of STATS_LEN items, gets the interval's counters; each histogram comes back as its
   non-zero span (counts_span); all are zeroed here */
static PyObject *Core_collect(CoreObject *self, PyObject *args) {
    PyObject *obj;
    Py_buffer view;
    core *k = ready_core(self);
    if (!k || !PyArg_ParseTuple(args, "O", &obj)) return NULL;
    if (PyObject_GetBuffer(obj, &view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0) return NULL;
    if (view.len != (Py_ssize_t)sizeof k->stats) {
        PyBuffer_Release(&view);
        return PyErr_Format(PyExc_ValueError, "collect: a buffer of %zd bytes is needed", sizeof k->stats);
    }
    PyObject *spans = PyTuple_New(N_HIST);
    for (int h = 0; spans && h < N_HIST; h++) {
        PyObject *span = counts_span(k->hist[h], H_LEN);
        if (!span) Py_CLEAR(spans);
        else PyTuple_SET_ITEM(spans, h, span);
    }
    if (spans) {  /* nothing is zeroed unless every span was made: a failed call loses no count */
        memcpy(view.buf, k->stats, sizeof k->stats);
        memset(k->stats, 0, sizeof(int64_t) * S_INTERVAL_LEN);
        memset(k->hist, 0, sizeof k->hist);
    }
    PyBuffer_Release(&view);
    return spans;
}

/* peer_bytes() -> bytes: the first bytes of a non-HTTP peer, once (b"" before and after) */
static PyObject *Core_peer_bytes(CoreObject *self, PyObject *Py_UNUSED(ignored)) {
    core *k = ready_core(self);
    if (!k) return NULL;
    if (k->peer_len <= 0) return PyBytes_FromStringAndSize("", 0);
    PyObject *out = PyBytes_FromStringAndSize(k->peer_bytes, k->peer_len);
    k->peer_len = -1;
    return out;
}

/* tls_reason() -> str: the first TLS failure's reason (the certificate's verify error), once ("" before and after) */
static PyObject *Core_tls_reason(CoreObject *self, PyObject *Py_UNUSED(ignored)) {
    core *k = ready_core(self);
    if (!k) return NULL;
    int len = 0;
    const char *reason = tls_take_reason(k, &len);
    return PyUnicode_DecodeUTF8(reason ? reason : "", len, "replace");
}

static PyObject *Core_get_in_flight(CoreObject *self, void *Py_UNUSED(closure)) {
    return PyLong_FromLong(self->k ? self->k->in_flight : 0);
}

static PyObject *Core_get_open(CoreObject *self, void *Py_UNUSED(closure)) {
    return PyLong_FromLong(self->k ? self->k->n_fd : 0);
}

static PyObject *Core_get_h2_peer_max_streams(CoreObject *self, void *Py_UNUSED(closure)) {
    return PyLong_FromLong(self->k ? h2_peer_max_streams(self->k) : 0);
}

static PyObject *Core_get_spool_error(CoreObject *self, void *Py_UNUSED(closure)) {
    return PyLong_FromLong(self->k ? self->k->spool_error : 0);
}

static PyObject *Core_get_page_repeats(CoreObject *self, void *Py_UNUSED(closure)) {
    return PyLong_FromLongLong(self->k ? self->k->page_repeats : 0);
}

static PyObject *Core_get_io(CoreObject *self, void *Py_UNUSED(closure)) {
    return PyUnicode_FromString(self->k && self->k->io ? self->k->io->name : "");
}

static PyMethodDef Core_methods[] = {
    {"start", (PyCFunction)Core_start, METH_VARARGS, "start(started_ns, connections): open the closed loop's slots"},
    {"run", (PyCFunction)Core_run, METH_VARARGS,
     "run(until_ns) -> done: run the loop without the GIL until then; True when nothing is left to do"},
    {"set_connections", (PyCFunction)Core_set_connections, METH_VARARGS, "staged closed loop: the slot count"},
    {"add_due", (PyCFunction)Core_add_due, METH_VARARGS, "open loop: more intended send times (int64 ns)"},
    {"schedule_done", (PyCFunction)Core_schedule_done, METH_NOARGS, "open loop: no more send times will come"},
    {"stop", (PyCFunction)Core_stop, METH_NOARGS, "no new request from now on; in-flight ones drain"},
    {"abandon", (PyCFunction)Core_abandon, METH_NOARGS, "count what is still in flight as abandoned, close all"},
    {"collect", (PyCFunction)Core_collect, METH_VARARGS,
     "collect(stats) -> ((low, counts, total) for latency, connect, service, tls): the interval's counters and histograms"},
    {"peer_bytes", (PyCFunction)Core_peer_bytes, METH_NOARGS, "the first bytes of a non-HTTP peer, once"},
    {"tls_reason", (PyCFunction)Core_tls_reason, METH_NOARGS, "the first TLS failure's reason, once"},
    {"collect_destinations", (PyCFunction)Core_collect_destinations, METH_NOARGS,
     "several destinations: connections opened to each since the last call"},
    {"collect_targets", (PyCFunction)Core_collect_targets, METH_NOARGS,
     "a request set: the per-target counts since the last call, [(group, requests, sum_latency_us, status, "
     "errors, (low, histogram counts))]"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Core_getset[] = {
    {"in_flight", (getter)Core_get_in_flight, NULL, "requests written and not yet answered", NULL},
    {"open", (getter)Core_get_open, NULL, "sockets open (connecting or connected)", NULL},
    {"io", (getter)Core_get_io, NULL, "the I/O backend", NULL},
    {"spool_error", (getter)Core_get_spool_error, NULL, "a streamed request set: errno of a failed read (0: none)",
     NULL},
    {"page_repeats", (getter)Core_get_page_repeats, NULL,
     "a streamed request set: pages walked again because the next was not loaded yet", NULL},
    {"h2_peer_max_streams", (getter)Core_get_h2_peer_max_streams, NULL,
     "HTTP/2: the smallest SETTINGS_MAX_CONCURRENT_STREAMS a server sent below the streams asked for (0: none)", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject CoreType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "twload.engine.core._core.Core",
    .tp_basicsize = sizeof(CoreObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "One worker's compiled event loop",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Core_init,
    .tp_dealloc = (destructor)Core_dealloc,
    .tp_methods = Core_methods,
    .tp_getset = Core_getset,
};

static PyObject *uring_available(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(ignored)) {
#ifdef TWLOAD_HAVE_URING
    return PyBool_FromLong(uring_usable());
#else
    Py_RETURN_FALSE;
#endif
}

static PyObject *uring_sockets(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(ignored)) {
#ifdef TWLOAD_HAVE_URING
    return PyBool_FromLong(uring_sockets_usable());
#else
    Py_RETURN_FALSE;
#endif
}

static PyObject *hist_index_py(PyObject *Py_UNUSED(module), PyObject *arg) {
    long long v = PyLong_AsLongLong(arg);
    if (v == -1 && PyErr_Occurred()) return NULL;
    if (v < 1 || v > H_HIGHEST) {
        PyErr_SetString(PyExc_ValueError, "value out of the histogram's range");
        return NULL;
    }
    return PyLong_FromLong(hist_index(v));
}

/* tls_check(tls_min=None, ciphers=None, ciphersuites=None) -> str: why the TLS options are refused, or "" */
static PyObject *tls_check_py(PyObject *Py_UNUSED(module), PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"tls_min", "ciphers", "ciphersuites", NULL};
    tls_options o = {0};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|$zzz", kwlist, &o.min_version, &o.ciphers, &o.ciphersuites))
        return NULL;
    char why[160];
    const char *bad = tls_check(&o, why, sizeof why);
    return PyUnicode_FromString(bad ? bad : "");
}

/* tls_alert_names() -> tuple: the name of each alert slot, E_TLS_ALERT + i */
static PyObject *tls_alert_names(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(ignored)) {
    PyObject *names = PyTuple_New(N_TLS_ALERTS);
    if (!names) return NULL;
    for (int i = 0; i < N_TLS_ALERTS; i++) {
        PyObject *name = PyUnicode_FromString(tls_alert_name(i));
        if (!name) {
            Py_DECREF(names);
            return NULL;
        }
        PyTuple_SET_ITEM(names, i, name);
    }
    return names;
}

static PyMethodDef module_methods[] = {
    {"tls_check", (PyCFunction)(void (*)(void))tls_check_py, METH_VARARGS | METH_KEYWORDS,
     "why these TLS options are refused (one line), or \"\""},
    {"tls_alert_names", tls_alert_names, METH_NOARGS, "the TLS alerts' names, in error slot order from E_TLS_ALERT"},
    {"hist_index", hist_index_py, METH_O, "the slot of a value (µs) in the HdrHistogram counts array, as recorded"},
    {"uring_available", uring_available, METH_NOARGS,
     "True when this build has io_uring and the kernel lets this process use it"},
    {"uring_sockets", uring_sockets, METH_NOARGS,
     "True when io_uring can make sockets here (IORING_OP_SOCKET): else the uring backend calls socket()"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_core", "twload's compiled engine core", -1, module_methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__core(void) {
    if (PyType_Ready(&CoreType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    Py_INCREF(&CoreType);
    if (PyModule_AddObject(m, "Core", (PyObject *)&CoreType) < 0) {
        Py_DECREF(&CoreType);
        Py_DECREF(m);
        return NULL;
    }
    struct { const char *name; long value; } constants[] = {
        {"STATS_LEN", S_LEN}, {"HIST_LEN", H_LEN}, {"S_REQUESTS", S_REQUESTS}, {"S_OPENED", S_OPENED},
        {"S_BYTES_IN", S_BYTES_IN}, {"S_BYTES_OUT", S_BYTES_OUT}, {"S_MAX_LAG_US", S_MAX_LAG_US},
        {"S_SUM_LATENCY", S_SUM_LATENCY}, {"S_SUM_CONNECT", S_SUM_CONNECT}, {"S_SUM_SERVICE", S_SUM_SERVICE},
        {"S_TAKEN", S_TAKEN}, {"S_WITHDRAWN", S_WITHDRAWN}, {"S_CLOSE_ERRORS", S_CLOSE_ERRORS},
        {"S_STATUS", S_STATUS}, {"N_STATUS", N_STATUS}, {"S_ERRORS", S_ERRORS}, {"N_ERRORS", N_ERRORS},
        {"S_FIRST_CONN", S_FIRST_CONN}, {"S_FIRST_NS", S_FIRST_NS}, {"E_CONNECT_TIMEOUT", E_CONNECT_TIMEOUT},
        {"E_TIMEOUT", E_TIMEOUT}, {"E_NO_SERVER_CLOSE", E_NO_SERVER_CLOSE}, {"E_PROTOCOL", E_PROTOCOL},
        {"E_HEAD_TOO_LARGE", E_HEAD_TOO_LARGE}, {"E_EOF_BEFORE_RESPONSE", E_EOF_BEFORE_RESPONSE},
        {"E_NOT_SENT", E_NOT_SENT}, {"E_ABANDONED", E_ABANDONED}, {"E_OTHER_ERRNO", E_OTHER_ERRNO},
        {"E_UNSOLICITED", E_UNSOLICITED}, {"E_UNEXPECTED_UPGRADE", E_UNEXPECTED_UPGRADE},
        {"E_TLS_HANDSHAKE_FAILED", E_TLS_HANDSHAKE_FAILED}, {"E_TLS_CERT_VERIFY_FAILED", E_TLS_CERT_VERIFY_FAILED},
        {"E_TLS_UNEXPECTED_EOF", E_TLS_UNEXPECTED_EOF}, {"E_TLS_ON_PLAIN_HTTP", E_TLS_ON_PLAIN_HTTP},
        {"E_TLS_ERROR", E_TLS_ERROR}, {"S_SUM_TLS", S_SUM_TLS},
        {"E_H2_PROTOCOL", E_H2_PROTOCOL}, {"E_H2_RETRIED", E_H2_RETRIED}, {"E_H2_NOT_NEGOTIATED", E_H2_NOT_NEGOTIATED},
        {"E_H2_RST", E_H2_RST}, {"E_H2_GOAWAY", E_H2_GOAWAY}, {"H2_MAX_STREAMS", H2_MAX_STREAMS},
        {"E_TLS_ALERT", E_TLS_ALERT}, {"S_TLS_HANDSHAKES", S_TLS_HANDSHAKES}, {"S_TLS_RESUMED", S_TLS_RESUMED},
        {"CLOSE_KEEPALIVE", CLOSE_KEEPALIVE}, {"CLOSE_FIN", CLOSE_FIN}, {"CLOSE_SERVER", CLOSE_SERVER},
        {"CLOSE_RST", CLOSE_RST}, {"OP_LIT", TPL_LIT}, {"OP_LAST_LIT", TPL_LAST_LIT}, {"OP_SEQ", TPL_SEQ},
        {"OP_RAND", TPL_RAND}, {"OP_UUID", TPL_UUID}, {"OP_WORKER", TPL_WORKER}, {"OP_CLEN", TPL_CLEN},
        {"MAX_RENDER", MAX_RENDER}, {"MAX_GROUPS", MAX_GROUPS},
#ifdef TWLOAD_HAVE_URING
        {"HAVE_URING", 1},
#else
        {"HAVE_URING", 0},
#endif
    };
    for (size_t i = 0; i < sizeof constants / sizeof constants[0]; i++)
        if (PyModule_AddIntConstant(m, constants[i].name, constants[i].value) < 0) {
            Py_DECREF(m);
            return NULL;
        }
    return m;
}
