/* pw_grpc: owns the gRPC C core server shared by the services, its threads
 * and its limits.
 *
 * Threads and queues: one notification completion queue (next-type) is
 * registered with the server; an acceptor thread keeps `pending` outstanding
 * call requests per method, each bound to its own pluck-type completion queue.
 * An accepted call is refused at once with RESOURCE_EXHAUSTED when
 * PW_GRPC_MAX_CALLS calls are in progress; otherwise it is queued to a pool of
 * call threads that grows on demand up to PW_GRPC_MAX_CALLS, so the queue
 * never holds more calls than there are threads to take them. The thread runs
 * the method's handler, which performs the call's batches synchronously by
 * plucking from the call's queue.
 *
 * Workers: handler code runs on at most `workers` threads at once. A call
 * takes a worker slot after each message it receives or sends and gives it
 * back while it waits on the network, so idle streams hold a thread but never
 * a worker. A call that finds no free worker within PW_GRPC_WORKER_WAIT_MS
 * ends with UNAVAILABLE. Every wait for a message ends after
 * PW_GRPC_IDLE_TIMEOUT_MS or at the call's PW_GRPC_MAX_CALL_MS lifetime with
 * DEADLINE_EXCEEDED; the client's own deadline is enforced by gRPC.
 *
 * Stop: NOT_SERVING for health, grpc_server_shutdown_and_notify on the
 * notification queue, wait up to the grace period for the shutdown tag (it
 * fires once every call is done), then grpc_server_cancel_all_calls and wait
 * again; finally the notification queue is shut down and drained, the
 * acceptor and the call threads are joined. */
#include "pw_grpc.h"

#include <errno.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pw_env.h"
#include "pw_grpc_internal.h"

static gpr_timespec pw_grpc_forever(void)
{
    return gpr_inf_future(GPR_CLOCK_REALTIME);
}

static gpr_timespec pw_grpc_after(int64_t ms)
{
    if (ms < 0) {
        ms = 0;
    }
    return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(ms, GPR_TIMESPAN));
}

int64_t pw_grpc_now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

struct timespec pw_grpc_abs_after(int64_t ms)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    if (ms < 0) {
        ms = 0;
    }
    t.tv_sec += (time_t)(ms / 1000);
    t.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

/* ---- limits -------------------------------------------------------------- */

void pw_grpc_limits_default(pw_grpc_limits *l)
{
    l->max_calls = 128;
    l->max_streams = 100;
    l->idle_timeout_ms = 30000;
    l->max_call_ms = 600000;
    l->worker_wait_ms = 5000;
    l->keepalive_time_ms = 60000;
    l->keepalive_timeout_ms = 20000;
    l->max_connection_idle_ms = 300000;
}

int pw_grpc_limits_from_env(pw_grpc_limits *l, char *err, size_t errlen)
{
    const long day = 86400000L;
    struct {
        const char *name;
        long *field;
        long min, max;
    } vars[] = {
        {"PW_GRPC_MAX_CALLS", &l->max_calls, 1, 4096},
        {"PW_GRPC_MAX_STREAMS_PER_CONNECTION", &l->max_streams, 1, 65536},
        {"PW_GRPC_IDLE_TIMEOUT_MS", &l->idle_timeout_ms, 10, day},
        {"PW_GRPC_MAX_CALL_MS", &l->max_call_ms, 10, day},
        {"PW_GRPC_WORKER_WAIT_MS", &l->worker_wait_ms, 1, day},
        {"PW_GRPC_KEEPALIVE_TIME_MS", &l->keepalive_time_ms, 1000, day},
        {"PW_GRPC_KEEPALIVE_TIMEOUT_MS", &l->keepalive_timeout_ms, 100, day},
        {"PW_GRPC_MAX_CONNECTION_IDLE_MS", &l->max_connection_idle_ms, 1000, day},
    };
    long got[sizeof vars / sizeof vars[0]];
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        if (pw_env_long(vars[i].name, *vars[i].field, vars[i].min, vars[i].max, &got[i], err,
                        errlen) != 0) {
            return -1;
        }
    }
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        *vars[i].field = got[i];
    }
    return 0;
}

/* ---- per-call resources -------------------------------------------------- */

static pw_grpc_call *pw_grpc_call_new(pw_grpc_server *s, pw_grpc_method *m)
{
    pw_grpc_call *c = calloc(1, sizeof *c);
    if (c == NULL) {
        return NULL;
    }
    c->srv = s;
    c->method = m;
    c->cq = grpc_completion_queue_create_for_pluck(NULL);
    grpc_metadata_array_init(&c->md);
    grpc_call_details_init(&c->details);
    return c;
}

static void pw_grpc_cq_destroy(grpc_completion_queue *cq)
{
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_pluck(cq, NULL, pw_grpc_forever(), NULL).type !=
           GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(cq);
}

/* Releases the gRPC side of a call: the call reference and its queue. */
static void pw_grpc_call_release(pw_grpc_call *c)
{
    pw_grpc_worker_release(c);
    if (c->call != NULL) {
        grpc_call_unref(c->call);
        c->call = NULL;
    }
    if (c->cq != NULL) {
        pw_grpc_cq_destroy(c->cq);
        c->cq = NULL;
    }
    grpc_metadata_array_destroy(&c->md);
    grpc_metadata_array_init(&c->md);
}

static void pw_grpc_call_free(pw_grpc_call *c)
{
    pw_grpc_call_release(c);
    grpc_metadata_array_destroy(&c->md);
    grpc_call_details_destroy(&c->details);
    free(c);
}

int64_t pw_grpc_lifetime_left_ms(const pw_grpc_call *c)
{
    return c->started_ms + c->srv->lim.max_call_ms - pw_grpc_now_ms();
}

/* ---- worker slots -------------------------------------------------------- */

void pw_grpc_worker_release(pw_grpc_call *c)
{
    if (!c->has_worker) {
        return;
    }
    pw_grpc_server *s = c->srv;
    pthread_mutex_lock(&s->mu);
    s->workers_busy--;
    pthread_cond_signal(&s->worker_cond);
    pthread_mutex_unlock(&s->mu);
    c->has_worker = 0;
}

/* Cancels a call that outlived PW_GRPC_MAX_CALL_MS: DEADLINE_EXCEEDED with
 * the limit in the message, counted. */
static void pw_grpc_cancel_past_lifetime(pw_grpc_call *c)
{
    pw_grpc_server *s = c->srv;
    char msg[160];
    atomic_fetch_add(&s->st_lifetime, 1);
    snprintf(msg, sizeof msg, "call exceeded the server's limit of %ld ms (PW_GRPC_MAX_CALL_MS)",
             s->lim.max_call_ms);
    grpc_call_cancel_with_status(c->call, GRPC_STATUS_DEADLINE_EXCEEDED, msg, NULL);
}

/* Waits for a free worker slot, up to PW_GRPC_WORKER_WAIT_MS and the call's
 * lifetime. 0, or -1 with the call aborted with a clear status. */
static int pw_grpc_worker_acquire(pw_grpc_call *c)
{
    pw_grpc_server *s = c->srv;
    if (c->has_worker) {
        return 0;
    }
    int64_t wait = s->lim.worker_wait_ms, left = pw_grpc_lifetime_left_ms(c);
    int lifetime = left < wait;
    struct timespec until = pw_grpc_abs_after(lifetime ? left : wait);
    int rc = 0;
    pthread_mutex_lock(&s->mu);
    while (s->workers_busy >= s->workers && rc != ETIMEDOUT) {
        rc = pthread_cond_timedwait(&s->worker_cond, &s->mu, &until);
    }
    int got = s->workers_busy < s->workers;
    if (got) {
        s->workers_busy++;
    }
    pthread_mutex_unlock(&s->mu);
    if (got) {
        c->has_worker = 1;
        return 0;
    }
    if (lifetime) {
        pw_grpc_cancel_past_lifetime(c);
    } else {
        char msg[160];
        atomic_fetch_add(&s->st_no_worker, 1);
        snprintf(msg, sizeof msg,
                 "server busy: no free worker within %ld ms (PW_GRPC_WORKER_WAIT_MS); retry later",
                 s->lim.worker_wait_ms);
        grpc_call_cancel_with_status(c->call, GRPC_STATUS_UNAVAILABLE, msg, NULL);
    }
    c->finished = 1;
    return -1;
}

/* ---- batches ------------------------------------------------------------- */

/* Runs one batch on the call's own queue and waits for it, without a worker
 * slot, for up to wait_ms (< 0: until gRPC completes it). 1 on success, 0 on
 * failure, -1 if the wait timed out (the batch is then still in flight). */
static int pw_grpc_run_batch(pw_grpc_call *c, const grpc_op *ops, size_t nops, int64_t wait_ms)
{
    if (c->call == NULL) {
        return 0;
    }
    pw_grpc_worker_release(c);
    if (grpc_call_start_batch(c->call, ops, nops, c, NULL) != GRPC_CALL_OK) {
        return 0;
    }
    gpr_timespec until = wait_ms < 0 ? pw_grpc_forever() : pw_grpc_after(wait_ms);
    grpc_event ev = grpc_completion_queue_pluck(c->cq, c, until, NULL);
    if (ev.type == GRPC_QUEUE_TIMEOUT) {
        return -1;
    }
    return ev.type == GRPC_OP_COMPLETE && ev.success;
}

/* Ends a call whose receive timed out: the client gets DEADLINE_EXCEEDED
 * with the reason, and the batch still in flight is collected. */
static void pw_grpc_recv_timed_out(pw_grpc_call *c, int lifetime)
{
    pw_grpc_server *s = c->srv;
    if (lifetime) {
        pw_grpc_cancel_past_lifetime(c);
    } else {
        char msg[160];
        atomic_fetch_add(&s->st_idle, 1);
        snprintf(msg, sizeof msg, "no message for %ld ms (PW_GRPC_IDLE_TIMEOUT_MS)",
                 s->lim.idle_timeout_ms);
        grpc_call_cancel_with_status(c->call, GRPC_STATUS_DEADLINE_EXCEEDED, msg, NULL);
    }
    (void)grpc_completion_queue_pluck(c->cq, c, pw_grpc_forever(), NULL);
    c->finished = 1;
}

/* ---- call API for handlers ----------------------------------------------- */

static uint8_t *pw_grpc_copy_message(grpc_byte_buffer *bb, size_t *len)
{
    grpc_byte_buffer_reader reader;
    if (!grpc_byte_buffer_reader_init(&reader, bb)) {
        return NULL;
    }
    grpc_slice all = grpc_byte_buffer_reader_readall(&reader);
    grpc_byte_buffer_reader_destroy(&reader);
    size_t n = GRPC_SLICE_LENGTH(all);
    uint8_t *out = malloc(n + 1);
    if (out != NULL) {
        if (n > 0) {
            memcpy(out, GRPC_SLICE_START_PTR(all), n);
        }
        out[n] = 0;
        *len = n;
    }
    grpc_slice_unref(all);
    return out;
}

int pw_grpc_call_recv(pw_grpc_call *c, uint8_t **buf, size_t *len)
{
    *buf = NULL;
    *len = 0;
    if (c->finished || c->call == NULL) {
        return -1;
    }
    grpc_byte_buffer *bb = NULL;
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &bb;
    int64_t idle = c->srv->lim.idle_timeout_ms, left = pw_grpc_lifetime_left_ms(c);
    int rc = pw_grpc_run_batch(c, &op, 1, left < idle ? left : idle);
    if (rc < 0) {
        pw_grpc_recv_timed_out(c, left < idle);
    }
    if (rc != 1) {
        if (bb != NULL) {
            grpc_byte_buffer_destroy(bb);
        }
        return -1;
    }
    if (bb == NULL) { /* end of stream, unless the call was cancelled or failed */
        return grpc_call_failed_before_recv_message(c->call) ? -1 : 0;
    }
    uint8_t *out = pw_grpc_copy_message(bb, len);
    grpc_byte_buffer_destroy(bb);
    if (out == NULL) {
        return -1;
    }
    if (pw_grpc_worker_acquire(c) != 0) {
        free(out);
        *len = 0;
        return -1;
    }
    *buf = out;
    return 1;
}

int pw_grpc_call_send(pw_grpc_call *c, const uint8_t *msg, size_t len)
{
    if (c->finished || c->call == NULL) {
        return -1;
    }
    grpc_op ops[2];
    size_t n = 0;
    memset(ops, 0, sizeof ops);
    if (!c->sent_initial) {
        ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
    }
    grpc_slice slice = grpc_slice_from_copied_buffer((const char *)msg, len);
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&slice, 1);
    grpc_slice_unref(slice);
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n++].data.send_message.send_message = bb;
    int rc = pw_grpc_run_batch(c, ops, n, -1);
    grpc_byte_buffer_destroy(bb);
    c->sent_initial = 1;
    if (rc != 1) {
        return -1;
    }
    return pw_grpc_worker_acquire(c);
}

const char *pw_grpc_call_metadata(pw_grpc_call *c, const char *key, char *out, size_t outlen)
{
    for (size_t i = 0; i < c->md.count; i++) {
        const grpc_metadata *m = &c->md.metadata[i];
        if (grpc_slice_str_cmp(m->key, key) != 0) {
            continue;
        }
        if (outlen == 0) {
            return NULL;
        }
        size_t n = GRPC_SLICE_LENGTH(m->value);
        if (n >= outlen) {
            n = outlen - 1;
        }
        memcpy(out, GRPC_SLICE_START_PTR(m->value), n);
        out[n] = '\0';
        return out;
    }
    return NULL;
}

int64_t pw_grpc_call_deadline_ms(pw_grpc_call *c)
{
    int64_t server = pw_grpc_lifetime_left_ms(c);
    gpr_timespec d = c->deadline;
    if (d.clock_type == GPR_TIMESPAN || gpr_time_cmp(d, gpr_inf_future(d.clock_type)) == 0 ||
        d.tv_sec == INT64_MAX) {
        return server;
    }
    gpr_timespec left = gpr_time_sub(d, gpr_now(d.clock_type));
    int64_t client = (int64_t)left.tv_sec * 1000 + left.tv_nsec / 1000000;
    return client < server ? client : server;
}

void pw_grpc_call_finish(pw_grpc_call *c, const uint8_t *resp, size_t len, grpc_status_code code,
                         const char *message)
{
    pw_grpc_call_finish_trailer(c, resp, len, code, message, NULL, NULL, 0);
}

void pw_grpc_call_finish_trailer(pw_grpc_call *c, const uint8_t *resp, size_t len,
                                 grpc_status_code code, const char *message,
                                 const char *trailer_key, const uint8_t *trailer,
                                 size_t trailer_len)
{
    if (c->finished) {
        return;
    }
    c->finished = 1;
    grpc_op ops[4];
    size_t n = 0;
    memset(ops, 0, sizeof ops);
    if (!c->sent_initial) {
        ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
    }
    grpc_byte_buffer *bb = NULL;
    if (code == GRPC_STATUS_OK && resp != NULL) {
        grpc_slice slice = grpc_slice_from_copied_buffer((const char *)resp, len);
        bb = grpc_raw_byte_buffer_create(&slice, 1);
        grpc_slice_unref(slice);
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n++].data.send_message.send_message = bb;
    }
    grpc_slice details = grpc_slice_from_copied_string(message ? message : "");
    grpc_metadata md;
    memset(&md, 0, sizeof md);
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    if (trailer_key != NULL) {
        md.key = grpc_slice_from_static_string(trailer_key);
        md.value = grpc_slice_from_copied_buffer((const char *)trailer, trailer_len);
        ops[n].data.send_status_from_server.trailing_metadata_count = 1;
        ops[n].data.send_status_from_server.trailing_metadata = &md;
    }
    ops[n].data.send_status_from_server.status = code;
    ops[n++].data.send_status_from_server.status_details = &details;
    int cancelled = 0;
    if (c->close_state == PW_GRPC_CLOSE_NONE) {
        ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
        ops[n++].data.recv_close_on_server.cancelled = &cancelled;
    }
    (void)pw_grpc_run_batch(c, ops, n, -1);
    if (c->close_state == PW_GRPC_CLOSE_PENDING) {
        (void)grpc_completion_queue_pluck(c->cq, &c->close_tag, pw_grpc_forever(), NULL);
        c->close_state = PW_GRPC_CLOSE_DONE;
    }
    if (bb != NULL) {
        grpc_byte_buffer_destroy(bb);
    }
    grpc_slice_unref(details);
    if (trailer_key != NULL) {
        grpc_slice_unref(md.value);
    }
    pw_grpc_call_release(c);
}

/* ---- server -------------------------------------------------------------- */

static void pw_grpc_arg_int(grpc_arg *a, const char *key, long v)
{
    a->type = GRPC_ARG_INTEGER;
    a->key = (char *)key;
    a->value.integer = v > INT_MAX ? INT_MAX : (int)v;
}

static grpc_server *pw_grpc_create(size_t max_recv_bytes, const pw_grpc_limits *l)
{
    grpc_arg argv[7];
    size_t n = 0;
    memset(argv, 0, sizeof argv);
    /* No SO_REUSEPORT: a second instance on the same port must fail to bind
     * instead of silently sharing the listener. */
    pw_grpc_arg_int(&argv[n++], GRPC_ARG_ALLOW_REUSEPORT, 0);
    if (max_recv_bytes > 0) {
        long m = max_recv_bytes > INT_MAX ? INT_MAX : (long)max_recv_bytes;
        pw_grpc_arg_int(&argv[n++], GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, m);
    }
    pw_grpc_arg_int(&argv[n++], GRPC_ARG_MAX_CONCURRENT_STREAMS, l->max_streams);
    pw_grpc_arg_int(&argv[n++], GRPC_ARG_KEEPALIVE_TIME_MS, l->keepalive_time_ms);
    pw_grpc_arg_int(&argv[n++], GRPC_ARG_KEEPALIVE_TIMEOUT_MS, l->keepalive_timeout_ms);
    pw_grpc_arg_int(&argv[n++], GRPC_ARG_MAX_CONNECTION_IDLE_MS, l->max_connection_idle_ms);
    grpc_channel_args args = {n, argv};
    return grpc_server_create(&args, NULL);
}

static void pw_grpc_cond_init_monotonic(pthread_cond_t *cv)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &attr);
    pthread_condattr_destroy(&attr);
}

pw_grpc_server *pw_grpc_server_new_limits(const char *addr, size_t max_recv_bytes,
                                          const pw_grpc_limits *limits, char *err, size_t errlen)
{
    if (addr == NULL || addr[0] == '\0') {
        snprintf(err, errlen, "gRPC listen address is empty");
        return NULL;
    }
    pw_grpc_server *s = calloc(1, sizeof *s);
    if (s == NULL || (s->addr = strdup(addr)) == NULL) {
        free(s);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->lim = *limits;
    grpc_init();
    s->server = pw_grpc_create(max_recv_bytes, &s->lim);
    s->cq = grpc_completion_queue_create_for_next(NULL);
    grpc_server_register_completion_queue(s->server, s->cq, NULL);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cond, NULL);
    pthread_cond_init(&s->shut_cond, NULL);
    pw_grpc_cond_init_monotonic(&s->worker_cond);
    pw_grpc_cond_init_monotonic(&s->health_cond);
    atomic_init(&s->stopping, 0);
    atomic_init(&s->watches, 0);
    return s;
}

pw_grpc_server *pw_grpc_server_new(const char *addr, size_t max_recv_bytes, char *err,
                                   size_t errlen)
{
    pw_grpc_limits l;
    pw_grpc_limits_default(&l);
    if (pw_grpc_limits_from_env(&l, err, errlen) != 0) {
        return NULL;
    }
    return pw_grpc_server_new_limits(addr, max_recv_bytes, &l, err, errlen);
}

/* Records the service of path "/pkg.Service/Method" once. 0 or -1. */
static int pw_grpc_add_service(pw_grpc_server *s, const char *path)
{
    const char *slash = path[0] == '/' ? strchr(path + 1, '/') : NULL;
    if (slash == NULL || slash == path + 1) {
        return -1;
    }
    size_t n = (size_t)(slash - path - 1);
    for (size_t i = 0; i < s->nservices; i++) {
        if (strlen(s->services[i]) == n && memcmp(s->services[i], path + 1, n) == 0) {
            return 0;
        }
    }
    char *name = strndup(path + 1, n);
    if (name == NULL) {
        return -1;
    }
    s->services[s->nservices++] = name;
    return 0;
}

int pw_grpc_server_add_method(pw_grpc_server *s, const char *path, pw_grpc_handler fn, void *ctx)
{
    if (s == NULL || s->started || fn == NULL || path == NULL ||
        s->nmethods == PW_GRPC_MAX_METHODS || pw_grpc_add_service(s, path) != 0) {
        return -1;
    }
    pw_grpc_method *m = &s->methods[s->nmethods];
    m->path = strdup(path);
    if (m->path == NULL) {
        return -1;
    }
    m->handle = grpc_server_register_method(s->server, m->path, NULL, GRPC_SRM_PAYLOAD_NONE, 0);
    if (m->handle == NULL) {
        free(m->path);
        m->path = NULL;
        return -1;
    }
    m->fn = fn;
    m->ctx = ctx;
    s->nmethods++;
    return 0;
}

static void pw_grpc_unimplemented(pw_grpc_call *call, void *ctx)
{
    (void)ctx;
    pw_grpc_call_finish(call, NULL, 0, GRPC_STATUS_UNIMPLEMENTED, "unknown method");
}

/* Posts one request for a new call of method m (the unknown-method
 * catch-all when m has no registration handle). */
static int pw_grpc_request(pw_grpc_server *s, pw_grpc_method *m)
{
    pw_grpc_call *c = pw_grpc_call_new(s, m);
    if (c == NULL) {
        return -1;
    }
    grpc_call_error e;
    if (m->handle == NULL) {
        e = grpc_server_request_call(s->server, &c->call, &c->details, &c->md, c->cq, s->cq, c);
    } else {
        e = grpc_server_request_registered_call(s->server, m->handle, &c->call, &c->deadline,
                                                &c->md, NULL, c->cq, s->cq, c);
    }
    if (e != GRPC_CALL_OK) {
        pw_grpc_call_free(c);
        return -1;
    }
    return 0;
}

static void *pw_grpc_thread_main(void *arg);

/* Refuses a call at once (the server is at PW_GRPC_MAX_CALLS), without
 * waiting for the client more than a second. */
static void pw_grpc_refuse(pw_grpc_server *s, pw_grpc_call *c)
{
    char msg[160];
    snprintf(msg, sizeof msg, "server busy: %ld calls in progress (PW_GRPC_MAX_CALLS); retry later",
             s->lim.max_calls);
    atomic_fetch_add(&s->st_busy, 1);
    grpc_slice details = grpc_slice_from_copied_string(msg);
    grpc_op ops[2];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[1].data.send_status_from_server.status = GRPC_STATUS_RESOURCE_EXHAUSTED;
    ops[1].data.send_status_from_server.status_details = &details;
    if (pw_grpc_run_batch(c, ops, 2, 1000) < 0) {
        grpc_call_cancel_with_status(c->call, GRPC_STATUS_RESOURCE_EXHAUSTED, msg, NULL);
        (void)grpc_completion_queue_pluck(c->cq, c, pw_grpc_forever(), NULL);
    }
    grpc_slice_unref(details);
    pw_grpc_call_free(c);
}

/* Queues an accepted call for a thread, starting one when none is idle.
 * 0, or -1 when the server is at PW_GRPC_MAX_CALLS. */
static int pw_grpc_enqueue(pw_grpc_server *s, pw_grpc_call *c)
{
    c->next = NULL;
    c->started_ms = pw_grpc_now_ms();
    pthread_mutex_lock(&s->mu);
    if (s->active >= s->lim.max_calls) {
        pthread_mutex_unlock(&s->mu);
        return -1;
    }
    s->active++;
    if (s->tail) {
        s->tail->next = c;
    } else {
        s->head = c;
    }
    s->tail = c;
    s->queued++;
    if (s->queued > s->idle_threads && s->nthreads < (unsigned)s->lim.max_calls &&
        pthread_create(&s->threads[s->nthreads], NULL, pw_grpc_thread_main, s) == 0) {
        s->nthreads++;
    }
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

static void pw_grpc_shutdown_done(pw_grpc_server *s)
{
    pthread_mutex_lock(&s->mu);
    s->shutdown_done = 1;
    pthread_cond_broadcast(&s->shut_cond);
    pthread_mutex_unlock(&s->mu);
}

static void *pw_grpc_acceptor_main(void *arg)
{
    pw_grpc_server *s = arg;
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(s->cq, pw_grpc_forever(), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN) {
            break;
        }
        if (ev.type != GRPC_OP_COMPLETE) {
            continue;
        }
        if (ev.tag == &s->shutdown_tag) {
            pw_grpc_shutdown_done(s);
            continue;
        }
        pw_grpc_call *c = ev.tag;
        pw_grpc_method *m = c->method;
        if (!ev.success) { /* the server is shutting down */
            pw_grpc_call_free(c);
            continue;
        }
        if (m->handle == NULL) {
            c->deadline = c->details.deadline;
        }
        if (!atomic_load(&s->stopping)) {
            (void)pw_grpc_request(s, m);
        }
        atomic_fetch_add(&s->st_total, 1);
        if (pw_grpc_enqueue(s, c) != 0) {
            pw_grpc_refuse(s, c);
        }
    }
    return NULL;
}

static void pw_grpc_run_call(pw_grpc_call *c)
{
    pw_grpc_server *s = c->srv;
    c->method->fn(c, c->method->ctx);
    if (!c->finished) {
        pw_grpc_call_finish(c, NULL, 0, GRPC_STATUS_INTERNAL, "handler did not respond");
    }
    pw_grpc_call_free(c);
    pthread_mutex_lock(&s->mu);
    s->active--;
    pthread_mutex_unlock(&s->mu);
}

static void *pw_grpc_thread_main(void *arg)
{
    pw_grpc_server *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        s->idle_threads++;
        while (s->head == NULL && !s->threads_stop) {
            pthread_cond_wait(&s->cond, &s->mu);
        }
        s->idle_threads--;
        pw_grpc_call *c = s->head;
        if (c != NULL) {
            s->head = c->next;
            if (s->head == NULL) {
                s->tail = NULL;
            }
            s->queued--;
        }
        pthread_mutex_unlock(&s->mu);
        if (c == NULL) {
            break; /* stopping and the queue is drained */
        }
        pw_grpc_run_call(c);
    }
    return NULL;
}

static void pw_grpc_stop_threads(pw_grpc_server *s)
{
    pthread_mutex_lock(&s->mu);
    s->threads_stop = 1;
    pthread_cond_broadcast(&s->cond);
    unsigned n = s->nthreads;
    pthread_mutex_unlock(&s->mu);
    for (unsigned i = 0; i < n; i++) {
        pthread_join(s->threads[i], NULL);
    }
    s->nthreads = 0;
}

/* Registers health and reflection; 0 or -1. */
static int pw_grpc_add_builtins(pw_grpc_server *s)
{
    static const struct {
        const char *path;
        pw_grpc_handler fn;
    } builtins[] = {
        {"/grpc.health.v1.Health/Check", pw_grpc_health_check},
        {"/grpc.health.v1.Health/Watch", pw_grpc_health_watch},
        {"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", pw_grpc_reflection_info},
        {"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", pw_grpc_reflection_info},
    };
    for (size_t i = 0; i < sizeof builtins / sizeof builtins[0]; i++) {
        if (pw_grpc_server_add_method(s, builtins[i].path, builtins[i].fn, s) != 0) {
            return -1;
        }
    }
    s->refl = pw_grpc_refl_new();
    return s->refl == NULL ? -1 : 0;
}

static void pw_grpc_post_requests(pw_grpc_server *s)
{
    s->pending = s->workers < 2 ? 2 : (s->workers > 16 ? 16 : s->workers);
    for (size_t m = 0; m < s->nmethods; m++) {
        for (unsigned k = 0; k < s->pending; k++) {
            (void)pw_grpc_request(s, &s->methods[m]);
        }
    }
    s->unknown.fn = pw_grpc_unimplemented;
    for (unsigned k = 0; k < 2; k++) {
        (void)pw_grpc_request(s, &s->unknown);
    }
}

int pw_grpc_server_start(pw_grpc_server *s, unsigned workers, char *err, size_t errlen)
{
    if (s->started) {
        snprintf(err, errlen, "gRPC server already started");
        return -1;
    }
    if (pw_grpc_add_builtins(s) != 0) {
        snprintf(err, errlen, "gRPC: cannot register health and reflection");
        return -1;
    }
    grpc_server_credentials *creds = grpc_insecure_server_credentials_create();
    int port = grpc_server_add_http2_port(s->server, s->addr, creds);
    grpc_server_credentials_release(creds);
    if (port == 0) {
        snprintf(err, errlen, "gRPC: cannot listen on %s", s->addr);
        return -1;
    }
    s->workers = workers == 0 ? 1 : workers;
    s->threads = calloc((size_t)s->lim.max_calls, sizeof *s->threads);
    if (s->threads == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    s->serving = 1;
    grpc_server_start(s->server);
    s->started = 1;
    pw_grpc_post_requests(s);
    int rc = pthread_create(&s->acceptor, NULL, pw_grpc_acceptor_main, s);
    if (rc != 0) {
        snprintf(err, errlen, "gRPC: cannot start threads: %s", strerror(rc));
        /* no acceptor: run the shutdown inline */
        atomic_store(&s->stopping, 1);
        grpc_server_shutdown_and_notify(s->server, s->cq, &s->shutdown_tag);
        grpc_server_cancel_all_calls(s->server);
        grpc_completion_queue_shutdown(s->cq);
        pw_grpc_acceptor_main(s);
        pw_grpc_stop_threads(s);
        s->stopped = 1;
        return -1;
    }
    return 0;
}

void pw_grpc_server_set_serving(pw_grpc_server *s, int serving)
{
    pthread_mutex_lock(&s->mu);
    if (s->serving != (serving != 0)) {
        s->serving = serving != 0;
        s->health_version++;
        pthread_cond_broadcast(&s->health_cond);
    }
    pthread_mutex_unlock(&s->mu);
}

void pw_grpc_server_stats_get(pw_grpc_server *s, pw_grpc_stats *out)
{
    pthread_mutex_lock(&s->mu);
    out->calls_active = s->active;
    out->threads = (long)s->nthreads;
    pthread_mutex_unlock(&s->mu);
    out->calls_total = atomic_load(&s->st_total);
    out->refused_busy = atomic_load(&s->st_busy);
    out->refused_no_worker = atomic_load(&s->st_no_worker);
    out->idle_timeouts = atomic_load(&s->st_idle);
    out->lifetime_exceeded = atomic_load(&s->st_lifetime);
}

/* Waits for the shutdown tag until deadline (NULL: forever); 1 if it came. */
static int pw_grpc_wait_shutdown(pw_grpc_server *s, const struct timespec *deadline)
{
    pthread_mutex_lock(&s->mu);
    int rc = 0;
    while (!s->shutdown_done && rc != ETIMEDOUT) {
        if (deadline) {
            rc = pthread_cond_timedwait(&s->shut_cond, &s->mu, deadline);
        } else {
            pthread_cond_wait(&s->shut_cond, &s->mu);
        }
    }
    int done = s->shutdown_done;
    pthread_mutex_unlock(&s->mu);
    return done;
}

void pw_grpc_server_stop(pw_grpc_server *s, int grace_ms)
{
    if (s == NULL || !s->started || s->stopped) {
        return;
    }
    s->stopped = 1;
    atomic_store(&s->stopping, 1);
    pw_grpc_server_set_serving(s, 0);
    grpc_server_shutdown_and_notify(s->server, s->cq, &s->shutdown_tag);

    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    if (grace_ms < 0) {
        grace_ms = 0;
    }
    deadline.tv_sec += grace_ms / 1000;
    deadline.tv_nsec += (long)(grace_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    if (!pw_grpc_wait_shutdown(s, &deadline)) {
        grpc_server_cancel_all_calls(s->server);
        pw_grpc_wait_shutdown(s, NULL);
    }
    grpc_completion_queue_shutdown(s->cq);
    pthread_join(s->acceptor, NULL);
    pw_grpc_stop_threads(s);
}

void pw_grpc_server_free(pw_grpc_server *s)
{
    if (s == NULL) {
        return;
    }
    if (s->started) {
        pw_grpc_server_stop(s, 0);
    } else {
        /* never started: shut down so the server may be destroyed */
        grpc_server_shutdown_and_notify(s->server, s->cq, &s->shutdown_tag);
        grpc_completion_queue_shutdown(s->cq);
        while (grpc_completion_queue_next(s->cq, pw_grpc_forever(), NULL).type !=
               GRPC_QUEUE_SHUTDOWN) {
        }
    }
    grpc_server_destroy(s->server);
    grpc_completion_queue_destroy(s->cq);
    for (size_t i = 0; i < s->nmethods; i++) {
        free(s->methods[i].path);
    }
    for (size_t i = 0; i < s->nservices; i++) {
        free(s->services[i]);
    }
    pw_grpc_refl_free(s->refl);
    free(s->threads);
    pthread_cond_destroy(&s->cond);
    pthread_cond_destroy(&s->shut_cond);
    pthread_cond_destroy(&s->worker_cond);
    pthread_cond_destroy(&s->health_cond);
    pthread_mutex_destroy(&s->mu);
    free(s->addr);
    free(s);
    grpc_shutdown();
}
