/* pw_grpc: owns the gRPC C core server shared by the services.
 *
 * Threads and queues: one notification completion queue (next-type) is
 * registered with the server; an acceptor thread keeps PW_GRPC_PENDING
 * outstanding grpc_server_request_registered_call requests per method, each
 * bound to its own pluck-type completion queue. An accepted call is queued to
 * a worker pool (mutex + condvar); the worker runs the method's handler, which
 * performs the call's batches synchronously by plucking from that queue.
 *
 * Stop: grpc_server_shutdown_and_notify on the notification queue, wait up to
 * the grace period for the shutdown tag (it fires once every call is done),
 * then grpc_server_cancel_all_calls and wait again; finally the notification
 * queue is shut down and drained, the acceptor and workers are joined. */
#include "pw_grpc.h"

#include <errno.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PW_GRPC_MAX_METHODS 16

typedef struct {
    char *path;
    void *handle; /* from grpc_server_register_method */
    pw_grpc_handler fn;
    void *ctx;
} pw_grpc_method;

struct pw_grpc_call {
    pw_grpc_server *srv;
    pw_grpc_method *method;
    grpc_call *call;           /* NULL until accepted and after finish */
    grpc_completion_queue *cq; /* pluck queue bound to this call */
    gpr_timespec deadline;
    grpc_metadata_array md;
    grpc_call_details details; /* unregistered calls only */
    int finished;
    struct pw_grpc_call *next; /* worker queue link */
};

struct pw_grpc_server {
    grpc_server *server;
    grpc_completion_queue *cq; /* notifications: new calls, shutdown */
    char *addr;
    pw_grpc_method methods[PW_GRPC_MAX_METHODS];
    size_t nmethods;
    pw_grpc_method unknown; /* answers calls to unregistered paths */
    unsigned pending;       /* outstanding call requests per method */

    int started, stopped;
    atomic_int stopping;
    pthread_t acceptor;
    pthread_t *workers;
    unsigned nworkers;

    pthread_mutex_t mu;
    pthread_cond_t cond;      /* queue non-empty or workers_stop */
    pthread_cond_t shut_cond; /* shutdown_done */
    pw_grpc_call *head, *tail;
    int workers_stop;
    int shutdown_done;
    char shutdown_tag;
};

static gpr_timespec pw_grpc_forever(void)
{
    return gpr_inf_future(GPR_CLOCK_REALTIME);
}

/* ---- per-call resources -------------------------------------------------- */

static pw_grpc_call *pw_grpc_call_new(pw_grpc_server *s, pw_grpc_method *m)
{
    pw_grpc_call *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
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
           GRPC_QUEUE_SHUTDOWN)
        ;
    grpc_completion_queue_destroy(cq);
}

/* Releases the gRPC side of a call: the call reference and its queue. */
static void pw_grpc_call_release(pw_grpc_call *c)
{
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

/* Runs one batch on the call's own queue and waits for it. 1 on success. */
static int pw_grpc_run_batch(pw_grpc_call *c, const grpc_op *ops, size_t nops)
{
    if (c->call == NULL)
        return 0;
    if (grpc_call_start_batch(c->call, ops, nops, c, NULL) != GRPC_CALL_OK)
        return 0;
    grpc_event ev = grpc_completion_queue_pluck(c->cq, c, pw_grpc_forever(), NULL);
    return ev.type == GRPC_OP_COMPLETE && ev.success;
}

/* ---- call API for handlers ----------------------------------------------- */

int pw_grpc_call_recv(pw_grpc_call *c, uint8_t **buf, size_t *len)
{
    *buf = NULL;
    *len = 0;
    grpc_byte_buffer *bb = NULL;
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &bb;
    if (!pw_grpc_run_batch(c, &op, 1)) {
        if (bb != NULL)
            grpc_byte_buffer_destroy(bb);
        return -1;
    }
    if (bb == NULL) /* end of stream, unless the call was cancelled or failed */
        return grpc_call_failed_before_recv_message(c->call) ? -1 : 0;
    grpc_byte_buffer_reader reader;
    if (!grpc_byte_buffer_reader_init(&reader, bb)) {
        grpc_byte_buffer_destroy(bb);
        return -1;
    }
    grpc_slice all = grpc_byte_buffer_reader_readall(&reader);
    grpc_byte_buffer_reader_destroy(&reader);
    grpc_byte_buffer_destroy(bb);
    size_t n = GRPC_SLICE_LENGTH(all);
    uint8_t *out = malloc(n + 1);
    if (out == NULL) {
        grpc_slice_unref(all);
        return -1;
    }
    if (n > 0)
        memcpy(out, GRPC_SLICE_START_PTR(all), n);
    out[n] = 0;
    grpc_slice_unref(all);
    *buf = out;
    *len = n;
    return 1;
}

const char *pw_grpc_call_metadata(pw_grpc_call *c, const char *key, char *out, size_t outlen)
{
    for (size_t i = 0; i < c->md.count; i++) {
        const grpc_metadata *m = &c->md.metadata[i];
        if (grpc_slice_str_cmp(m->key, key) != 0)
            continue;
        if (outlen == 0)
            return NULL;
        size_t n = GRPC_SLICE_LENGTH(m->value);
        if (n >= outlen)
            n = outlen - 1;
        memcpy(out, GRPC_SLICE_START_PTR(m->value), n);
        out[n] = '\0';
        return out;
    }
    return NULL;
}

int64_t pw_grpc_call_deadline_ms(pw_grpc_call *c)
{
    gpr_timespec d = c->deadline;
    if (d.clock_type == GPR_TIMESPAN || gpr_time_cmp(d, gpr_inf_future(d.clock_type)) == 0 ||
        d.tv_sec == INT64_MAX)
        return INT64_MAX;
    gpr_timespec left = gpr_time_sub(d, gpr_now(d.clock_type));
    return (int64_t)left.tv_sec * 1000 + left.tv_nsec / 1000000;
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
    if (c->finished)
        return;
    c->finished = 1;
    grpc_op ops[4];
    size_t n = 0;
    memset(ops, 0, sizeof ops);
    ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;

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
    ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    ops[n++].data.recv_close_on_server.cancelled = &cancelled;

    (void)pw_grpc_run_batch(c, ops, n);
    if (bb != NULL)
        grpc_byte_buffer_destroy(bb);
    grpc_slice_unref(details);
    if (trailer_key != NULL) {
        grpc_slice_unref(md.value);
    }
    pw_grpc_call_release(c);
}

/* ---- server -------------------------------------------------------------- */

pw_grpc_server *pw_grpc_server_new(const char *addr, size_t max_recv_bytes, char *err,
                                   size_t errlen)
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
    grpc_init();
    /* No SO_REUSEPORT: a second instance on the same port must fail to bind
     * instead of silently sharing the listener. */
    grpc_arg argv[2];
    memset(argv, 0, sizeof argv);
    argv[0].type = GRPC_ARG_INTEGER;
    argv[0].key = GRPC_ARG_ALLOW_REUSEPORT;
    argv[0].value.integer = 0;
    argv[1].type = GRPC_ARG_INTEGER;
    argv[1].key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
    argv[1].value.integer = max_recv_bytes > INT_MAX ? INT_MAX : (int)max_recv_bytes;
    grpc_channel_args args = {max_recv_bytes > 0 ? 2 : 1, argv};
    s->server = grpc_server_create(&args, NULL);
    s->cq = grpc_completion_queue_create_for_next(NULL);
    grpc_server_register_completion_queue(s->server, s->cq, NULL);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cond, NULL);
    pthread_cond_init(&s->shut_cond, NULL);
    atomic_init(&s->stopping, 0);
    return s;
}

int pw_grpc_server_add_method(pw_grpc_server *s, const char *path, pw_grpc_handler fn, void *ctx)
{
    if (s == NULL || s->started || fn == NULL || path == NULL || s->nmethods == PW_GRPC_MAX_METHODS)
        return -1;
    pw_grpc_method *m = &s->methods[s->nmethods];
    m->path = strdup(path);
    if (m->path == NULL)
        return -1;
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
    if (c == NULL)
        return -1;
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

static void pw_grpc_enqueue(pw_grpc_server *s, pw_grpc_call *c)
{
    c->next = NULL;
    pthread_mutex_lock(&s->mu);
    if (s->tail)
        s->tail->next = c;
    else
        s->head = c;
    s->tail = c;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->mu);
}

static void *pw_grpc_acceptor_main(void *arg)
{
    pw_grpc_server *s = arg;
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(s->cq, pw_grpc_forever(), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            break;
        if (ev.type != GRPC_OP_COMPLETE)
            continue;
        if (ev.tag == &s->shutdown_tag) {
            pthread_mutex_lock(&s->mu);
            s->shutdown_done = 1;
            pthread_cond_broadcast(&s->shut_cond);
            pthread_mutex_unlock(&s->mu);
            continue;
        }
        pw_grpc_call *c = ev.tag;
        pw_grpc_method *m = c->method;
        if (!ev.success) { /* the server is shutting down */
            pw_grpc_call_free(c);
            continue;
        }
        if (m->handle == NULL)
            c->deadline = c->details.deadline;
        pw_grpc_enqueue(s, c);
        if (!atomic_load(&s->stopping))
            (void)pw_grpc_request(s, m);
    }
    return NULL;
}

static void pw_grpc_run_call(pw_grpc_call *c)
{
    c->method->fn(c, c->method->ctx);
    if (!c->finished)
        pw_grpc_call_finish(c, NULL, 0, GRPC_STATUS_INTERNAL, "handler did not respond");
    pw_grpc_call_free(c);
}

static void *pw_grpc_worker_main(void *arg)
{
    pw_grpc_server *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        while (s->head == NULL && !s->workers_stop)
            pthread_cond_wait(&s->cond, &s->mu);
        pw_grpc_call *c = s->head;
        if (c != NULL) {
            s->head = c->next;
            if (s->head == NULL)
                s->tail = NULL;
        }
        pthread_mutex_unlock(&s->mu);
        if (c == NULL)
            break; /* stopping and the queue is drained */
        pw_grpc_run_call(c);
    }
    return NULL;
}

static void pw_grpc_stop_workers(pw_grpc_server *s)
{
    pthread_mutex_lock(&s->mu);
    s->workers_stop = 1;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->mu);
    for (unsigned i = 0; i < s->nworkers; i++)
        pthread_join(s->workers[i], NULL);
    s->nworkers = 0;
}

int pw_grpc_server_start(pw_grpc_server *s, unsigned workers, char *err, size_t errlen)
{
    if (s->started) {
        snprintf(err, errlen, "gRPC server already started");
        return -1;
    }
    grpc_server_credentials *creds = grpc_insecure_server_credentials_create();
    int port = grpc_server_add_http2_port(s->server, s->addr, creds);
    grpc_server_credentials_release(creds);
    if (port == 0) {
        snprintf(err, errlen, "gRPC: cannot listen on %s", s->addr);
        return -1;
    }
    if (workers == 0)
        workers = 1;
    s->workers = calloc(workers, sizeof *s->workers);
    if (s->workers == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    grpc_server_start(s->server);
    s->started = 1;
    for (unsigned i = 0; i < workers; i++) {
        int rc = pthread_create(&s->workers[i], NULL, pw_grpc_worker_main, s);
        if (rc != 0)
            break;
        s->nworkers++;
    }
    s->pending = workers < 2 ? 2 : (workers > 16 ? 16 : workers);
    for (size_t m = 0; m < s->nmethods; m++)
        for (unsigned k = 0; k < s->pending; k++)
            (void)pw_grpc_request(s, &s->methods[m]);
    s->unknown.fn = pw_grpc_unimplemented;
    for (unsigned k = 0; k < 2; k++)
        (void)pw_grpc_request(s, &s->unknown);
    int rc = s->nworkers == 0 ? -1 : pthread_create(&s->acceptor, NULL, pw_grpc_acceptor_main, s);
    if (rc != 0) {
        snprintf(err, errlen, "gRPC: cannot start threads: %s", strerror(rc < 0 ? EAGAIN : rc));
        /* no acceptor: run the shutdown inline */
        atomic_store(&s->stopping, 1);
        grpc_server_shutdown_and_notify(s->server, s->cq, &s->shutdown_tag);
        grpc_server_cancel_all_calls(s->server);
        grpc_completion_queue_shutdown(s->cq);
        pw_grpc_acceptor_main(s);
        pw_grpc_stop_workers(s);
        s->stopped = 1;
        return -1;
    }
    return 0;
}

/* Waits for the shutdown tag until deadline (NULL: forever); 1 if it came. */
static int pw_grpc_wait_shutdown(pw_grpc_server *s, const struct timespec *deadline)
{
    pthread_mutex_lock(&s->mu);
    int rc = 0;
    while (!s->shutdown_done && rc != ETIMEDOUT) {
        if (deadline)
            rc = pthread_cond_timedwait(&s->shut_cond, &s->mu, deadline);
        else
            pthread_cond_wait(&s->shut_cond, &s->mu);
    }
    int done = s->shutdown_done;
    pthread_mutex_unlock(&s->mu);
    return done;
}

void pw_grpc_server_stop(pw_grpc_server *s, int grace_ms)
{
    if (s == NULL || !s->started || s->stopped)
        return;
    s->stopped = 1;
    atomic_store(&s->stopping, 1);
    grpc_server_shutdown_and_notify(s->server, s->cq, &s->shutdown_tag);

    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    if (grace_ms < 0)
        grace_ms = 0;
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
    pw_grpc_stop_workers(s);
}

void pw_grpc_server_free(pw_grpc_server *s)
{
    if (s == NULL)
        return;
    if (s->started) {
        pw_grpc_server_stop(s, 0);
    } else {
        /* never started: shut down so the server may be destroyed */
        grpc_server_shutdown_and_notify(s->server, s->cq, &s->shutdown_tag);
        grpc_completion_queue_shutdown(s->cq);
        while (grpc_completion_queue_next(s->cq, pw_grpc_forever(), NULL).type !=
               GRPC_QUEUE_SHUTDOWN)
            ;
    }
    grpc_server_destroy(s->server);
    grpc_completion_queue_destroy(s->cq);
    for (size_t i = 0; i < s->nmethods; i++)
        free(s->methods[i].path);
    free(s->workers);
    pthread_cond_destroy(&s->cond);
    pthread_cond_destroy(&s->shut_cond);
    pthread_mutex_destroy(&s->mu);
    free(s->addr);
    free(s);
    grpc_shutdown();
}
