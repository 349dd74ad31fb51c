/* rest: the libmicrohttpd front end. Routes requests, enforces method, media
 * type, size and Idempotency-Key rules, hands bodies to ingest, enqueues the
 * records and suspends the connection until the last delivery report; the
 * answer (202 or 503) is sent only then. Also serves /healthz /readyz /metrics. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ingest.h"
#include "producer.h"
#include "pw_http.h"
#include "pw_log.h"
#include "pw_time.h"
#include "trust.h"

#define PW_REST_MAX_CONSUMER 128
#define PW_REST_LOG_TOKENS 20
/* Bodies announced beyond this are refused without reading them. */
#define PW_REST_DRAIN_FACTOR 8
/* Per-connection pool for headers and I/O buffers (bodies are kept apart). */
#define PW_REST_CONN_MEMORY (16 * 1024)

typedef enum {
    PW_ROUTE_TELEMETRY,
    PW_ROUTE_ALERTS,
    PW_ROUTE_HEALTHZ,
    PW_ROUTE_READYZ,
    PW_ROUTE_METRICS,
    PW_ROUTE_OTHER
} pw_route;

static const char *const pw_route_names[] = {"/v1/telemetry", "/v1/alerts", "/healthz",
                                             "/readyz",       "/metrics",   "other"};

typedef enum { PW_PHASE_READING, PW_PHASE_WAITING, PW_PHASE_DONE } pw_rest_phase;

typedef struct {
    pw_producer *p;
    struct MHD_Connection *conn;
    pw_route route;
    const char *method;
    pw_rest_phase phase;
    int64_t start_us;
    /* A rule violation found before or while reading the body: answered once
     * the body has been consumed. */
    unsigned err_status;
    const char *err_code;
    char err_msg[160];
    pw_http_body body;
    int body_init;
    char consumer[PW_REST_MAX_CONSUMER + 1];
    char idem_key[PW_MAX_ID_LEN + 1];
    int has_idem;
    pw_ingest_batch batch;
    pw_delivery dlv;
    pthread_mutex_t mu;
    int suspended, complete;
} pw_rest_req;

static pw_route pw_rest_route(const char *url)
{
    for (int r = 0; r < PW_ROUTE_OTHER; r++) {
        if (strcmp(url, pw_route_names[r]) == 0) {
            return (pw_route)r;
        }
    }
    return PW_ROUTE_OTHER;
}

static const char *pw_rest_method_label(const char *m)
{
    static const char *const known[] = {"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"};
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        if (strcmp(m, known[i]) == 0) {
            return known[i];
        }
    }
    return "other";
}

static void pw_rest_count(pw_rest_req *r, unsigned status)
{
    char st[8];
    snprintf(st, sizeof(st), "%u", status);
    const char *labels[] = {pw_route_names[r->route], pw_rest_method_label(r->method), st};
    pw_prom_add(r->p->http_requests, labels, 1);
}

static void pw_rest_log(pw_rest_req *r, unsigned status, const char *code, size_t accepted)
{
    if (!r->p->cfg.log_requests || r->route > PW_ROUTE_ALERTS) {
        return;
    }
    double ms = (double)(pw_monotonic_us() - r->start_us) / 1000.0;
    const char *labels[] = {pw_route_names[r->route]};
    pw_prom_observe(r->p->request_seconds, labels, ms / 1000.0);
    json_t *tokens = json_array();
    for (size_t i = 0; i < r->batch.n && i < PW_REST_LOG_TOKENS; i++) {
        json_array_append_new(tokens, json_string(r->batch.msgs[i].token));
    }
    json_t *f =
        json_pack("{s:s,s:s,s:i,s:o,s:I,s:I,s:f}", "route", pw_route_names[r->route], "consumer",
                  r->consumer, "status", (int)status, "tokens", tokens, "messages",
                  (json_int_t)r->batch.n, "accepted", (json_int_t)accepted, "duration_ms", ms);
    if (code) {
        json_object_set_new(f, "error", json_string(code));
    }
    if (r->has_idem) {
        json_object_set_new(f, "idempotency_key", json_string(r->idem_key));
    }
    pw_log_fields(status >= 500 ? PW_LOG_WARN : PW_LOG_INFO, "request", f, "%s %s -> %u", r->method,
                  pw_route_names[r->route], status);
}

static enum MHD_Result pw_rest_reply(pw_rest_req *r, unsigned status, json_t *body,
                                     const char *hname, const char *hval)
{
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (!text) {
        return MHD_NO;
    }
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    if (hname) {
        MHD_add_response_header(resp, hname, hval);
    }
    if (atomic_load(&r->p->stopping)) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    }
    enum MHD_Result rc = MHD_queue_response(r->conn, status, resp);
    MHD_destroy_response(resp);
    pw_rest_count(r, status);
    r->phase = PW_PHASE_DONE;
    return rc;
}

/* Error answer; details (owned, NULL for none) lists at most
 * PW_INGEST_MAX_DETAILS of details_total problems ("details_total" is added
 * when the list is cut); extra (owned, NULL for none) adds top-level members. */
static enum MHD_Result pw_rest_error_full(pw_rest_req *r, unsigned status, const char *code,
                                          const char *message, json_t *details,
                                          size_t details_total, json_t *extra)
{
    const char *hname = NULL, *hval = NULL;
    char retry[16];
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED) {
        hname = MHD_HTTP_HEADER_ALLOW;
        hval = r->route <= PW_ROUTE_ALERTS ? "POST" : "GET, HEAD";
    } else if (status == MHD_HTTP_SERVICE_UNAVAILABLE) {
        snprintf(retry, sizeof(retry), "%ld", r->p->cfg.retry_after_s);
        hname = MHD_HTTP_HEADER_RETRY_AFTER;
        hval = retry;
    }
    if (!details) {
        details = json_array();
    }
    size_t listed = json_array_size(details);
    json_t *err = json_pack("{s:s,s:s,s:o}", "code", code, "message", message, "details", details);
    if (details_total > listed) {
        json_object_set_new(err, "details_total", json_integer((json_int_t)details_total));
    }
    json_t *body = extra ? extra : json_object();
    json_object_set_new(body, "error", err);
    pw_rest_log(r, status, code,
                extra ? (size_t)json_integer_value(json_object_get(extra, "accepted")) : 0);
    return pw_rest_reply(r, status, body, hname, hval);
}

static enum MHD_Result pw_rest_error(pw_rest_req *r, unsigned status, const char *code,
                                     const char *message, json_t *details)
{
    return pw_rest_error_full(r, status, code, message, details, 0, NULL);
}

static void pw_rest_defer_error(pw_rest_req *r, unsigned status, const char *code, const char *msg)
{
    if (r->err_status) {
        return; /* the first violation wins */
    }
    r->err_status = status;
    r->err_code = code;
    snprintf(r->err_msg, sizeof(r->err_msg), "%s", msg);
}

static enum MHD_Result pw_rest_ops(pw_rest_req *r)
{
    if (strcmp(r->method, "GET") != 0 && strcmp(r->method, "HEAD") != 0) {
        pw_rest_defer_error(r, 405, "method_not_allowed", "use GET or HEAD");
        return MHD_YES;
    }
    unsigned status = 200;
    if (r->route == PW_ROUTE_READYZ) {
        char why[128];
        status = pw_kafka_out_ready(&r->p->kafka, why, sizeof(why)) ? 200 : 503;
    }
    enum MHD_Result res = MHD_NO;
    if (!pw_http_serve_ops(r->conn, pw_route_names[r->route], r->method, r->p->prom,
                           pw_kafka_out_ready, &r->p->kafka, &res)) {
        return MHD_NO;
    }
    pw_rest_count(r, status);
    r->phase = PW_PHASE_DONE;
    return res;
}

static const char *pw_rest_header(pw_rest_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

/* Checks everything knowable from the request line and headers. */
static void pw_rest_check_headers(pw_rest_req *r)
{
    pw_producer *p = r->p;
    if (pw_trust_rest_refused(p, r->conn, pw_route_names[r->route])) {
        pw_rest_defer_error(r, 401, "unauthenticated", PW_TRUST_MESSAGE);
    }
    if (r->route == PW_ROUTE_OTHER) {
        pw_rest_defer_error(r, 404, "not_found", "no such route");
        return;
    }
    if (strcmp(r->method, "POST") != 0) {
        pw_rest_defer_error(r, 405, "method_not_allowed", "use POST");
        return;
    }
    if (!pw_http_is_json(r->conn)) {
        pw_rest_defer_error(r, 415, "unsupported_media_type",
                            "Content-Type must be application/json");
    }
    const char *cl = pw_rest_header(r, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl && strtoull(cl, NULL, 10) > (unsigned long long)p->cfg.max_body_bytes) {
        pw_rest_defer_error(r, 413, "payload_too_large", "request body exceeds the size limit");
    }
    const char *key = pw_rest_header(r, "Idempotency-Key");
    if (key) {
        if (!pw_idempotency_key_valid(key)) {
            pw_rest_defer_error(r, 400, "invalid_idempotency_key",
                                "Idempotency-Key must be 1..128 visible ASCII characters");
        } else {
            snprintf(r->idem_key, sizeof(r->idem_key), "%s", key);
            r->has_idem = 1;
        }
    }
    const char *consumer = pw_rest_header(r, "X-Consumer-Username");
    snprintf(r->consumer, sizeof(r->consumer), "%s",
             consumer && consumer[0] ? consumer : "anonymous");
    if (atomic_load(&p->stopping)) {
        pw_rest_defer_error(r, 503, "kafka_unavailable", "shutting down");
    }
    pw_http_body_init(&r->body, (size_t)p->cfg.max_body_bytes);
    r->body_init = 1;
}

static int pw_rest_announced_huge(pw_rest_req *r)
{
    const char *cl = pw_rest_header(r, MHD_HTTP_HEADER_CONTENT_LENGTH);
    unsigned long long cap = (unsigned long long)r->p->cfg.max_body_bytes * PW_REST_DRAIN_FACTOR;
    return cl && strtoull(cl, NULL, 10) > cap;
}

static enum MHD_Result pw_rest_first(pw_producer *p, struct MHD_Connection *c, const char *url,
                                     const char *method, void **con_cls)
{
    pw_rest_req *r = calloc(1, sizeof(*r));
    if (!r) {
        return MHD_NO;
    }
    r->p = p;
    r->conn = c;
    r->method = method;
    r->route = pw_rest_route(url);
    r->start_us = pw_monotonic_us();
    pthread_mutex_init(&r->mu, NULL);
    pw_ingest_batch_init(&r->batch);
    snprintf(r->consumer, sizeof(r->consumer), "anonymous");
    *con_cls = r;
    if (r->route >= PW_ROUTE_HEALTHZ && r->route <= PW_ROUTE_METRICS) {
        return pw_rest_ops(r);
    }
    pw_rest_check_headers(r);
    /* Far too large to be worth draining: answer now, MHD then closes. */
    if (r->err_status == 413 && pw_rest_announced_huge(r)) {
        return pw_rest_error(r, 413, "payload_too_large", r->err_msg, NULL);
    }
    return MHD_YES;
}

/* Delivery completion: runs on the Kafka poll thread (or inline). */
static void pw_rest_delivered(pw_delivery *d, void *ctx)
{
    (void)d;
    pw_rest_req *r = ctx;
    pthread_mutex_lock(&r->mu);
    r->complete = 1;
    int resume = r->suspended;
    struct MHD_Connection *c = r->conn;
    pthread_mutex_unlock(&r->mu);
    if (resume) {
        MHD_resume_connection(c); /* r may be freed from here on */
    }
}

/* 503 naming exactly which items were accepted: "accepted" (count), "ids"
 * (one per item at its index: the token, or null when not accepted) and the
 * first PW_INGEST_MAX_DETAILS items not accepted with their reason. */
static enum MHD_Result pw_rest_partial(pw_rest_req *r, size_t accepted)
{
    json_t *ids = json_array();
    json_t *details = json_array();
    for (size_t i = 0; i < r->batch.n; i++) {
        const pw_ingest_msg *m = &r->batch.msgs[i];
        int ok = m->state == PW_MSG_DELIVERED;
        json_array_append_new(ids, ok ? json_string(m->token) : json_null());
        if (!ok && json_array_size(details) < PW_INGEST_MAX_DETAILS) {
            json_array_append_new(details, json_pack("{s:I,s:s}", "index", (json_int_t)m->index,
                                                     "reason", pw_kafka_out_reason(m)));
        }
    }
    size_t failed = r->batch.n - accepted;
    char msg[200];
    snprintf(msg, sizeof(msg),
             "Kafka acknowledged %zu of %zu records; retry the %zu not accepted (ids[i] is null), "
             "with the same Idempotency-Key",
             accepted, r->batch.n, failed);
    json_t *extra = json_pack("{s:I,s:I,s:o}", "accepted", (json_int_t)accepted, "failed",
                              (json_int_t)failed, "ids", ids);
    return pw_rest_error_full(r, 503, "kafka_unavailable", msg, details, failed, extra);
}

static enum MHD_Result pw_rest_answer(pw_rest_req *r)
{
    atomic_fetch_sub(&r->p->inflight, 1);
    size_t accepted = 0;
    for (size_t i = 0; i < r->batch.n; i++) {
        accepted += r->batch.msgs[i].state == PW_MSG_DELIVERED;
    }
    if (accepted < r->batch.n) {
        return pw_rest_partial(r, accepted);
    }
    json_t *ids = json_array();
    for (size_t i = 0; i < r->batch.n; i++) {
        json_array_append_new(ids, json_string(r->batch.msgs[i].token));
    }
    json_t *body = json_pack("{s:I,s:o}", "accepted", (json_int_t)r->batch.n, "ids", ids);
    pw_rest_log(r, 202, NULL, r->batch.n);
    return pw_rest_reply(r, 202, body, NULL, NULL);
}

static enum MHD_Result pw_rest_ingest(pw_rest_req *r)
{
    pw_producer *p = r->p;
    pw_ingest_meta meta = {.consumer = r->consumer,
                           .idem_key = r->has_idem ? r->idem_key : NULL,
                           .stream_message = -1,
                           .source = IOT__V1__SOURCE__SOURCE_REST,
                           .received_ms = pw_now_ms()};
    pw_ingest_error e;
    pw_kind kind = r->route == PW_ROUTE_ALERTS ? PW_KIND_ALERT : PW_KIND_READING;
    if (pw_ingest_from_json(&r->batch, kind, r->body.data ? r->body.data : "", r->body.len, &meta,
                            &e) < 0) {
        enum MHD_Result rc =
            pw_rest_error_full(r, e.status, e.code, e.message, e.details, e.details_total, NULL);
        e.details = NULL;
        pw_ingest_error_clear(&e);
        return rc;
    }
    atomic_fetch_add(&p->inflight, 1);
    pw_delivery_begin(&r->dlv, pw_rest_delivered, r);
    for (size_t i = 0; i < r->batch.n; i++) {
        if (pw_kafka_out_send(&p->kafka, &r->dlv, &r->batch.msgs[i], p->cfg.enqueue_timeout_ms) !=
            PW_SEND_OK) {
            break; /* enqueue no more: the rest is answered as not sent */
        }
    }
    r->phase = PW_PHASE_WAITING;
    pw_delivery_end(&r->dlv);
    pthread_mutex_lock(&r->mu);
    int complete = r->complete;
    if (!complete) {
        MHD_suspend_connection(r->conn);
        r->suspended = 1;
    }
    pthread_mutex_unlock(&r->mu);
    return complete ? pw_rest_answer(r) : MHD_YES;
}

static enum MHD_Result pw_rest_handle(void *cls, struct MHD_Connection *c, const char *url,
                                      const char *method, const char *version,
                                      const char *upload_data, size_t *upload_data_size,
                                      void **con_cls)
{
    (void)version;
    pw_rest_req *r = *con_cls;
    if (!r) {
        return pw_rest_first(cls, c, url, method, con_cls);
    }
    if (*upload_data_size) {
        if (!r->err_status && r->body_init) {
            pw_http_body_append(&r->body, upload_data, *upload_data_size);
            if (r->body.too_large) {
                pw_rest_defer_error(r, 413, "payload_too_large",
                                    "request body exceeds the size limit");
            }
        }
        *upload_data_size = 0; /* consumed (or discarded after an error) */
        return MHD_YES;
    }
    switch (r->phase) {
    case PW_PHASE_READING:
        if (r->err_status) {
            return pw_rest_error(r, r->err_status, r->err_code, r->err_msg, NULL);
        }
        return pw_rest_ingest(r);
    case PW_PHASE_WAITING:
        return pw_rest_answer(r);
    case PW_PHASE_DONE:
    default:
        return MHD_YES;
    }
}

static void pw_rest_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                              enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    pw_rest_req *r = *con_cls;
    if (!r) {
        return;
    }
    if (r->phase == PW_PHASE_WAITING) { /* client left before the answer */
        atomic_fetch_sub(&r->p->inflight, 1);
    }
    if (r->body_init) {
        pw_http_body_free(&r->body);
    }
    pw_ingest_batch_free(&r->batch);
    pthread_mutex_destroy(&r->mu);
    free(r);
    *con_cls = NULL;
}

static void pw_rest_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char buf[512];
    vsnprintf(buf, sizeof(buf), fmt, ap);
    size_t n = strlen(buf);
    if (n && buf[n - 1] == '\n') {
        buf[n - 1] = '\0';
    }
    pw_log(PW_LOG_WARN, "httpd", "%s", buf);
}

int pw_rest_start(pw_producer *p, char *err, size_t errlen)
{
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)p->cfg.http_port);
    if (inet_pton(AF_INET, p->cfg.bind_addr, &addr.sin_addr) != 1) {
        snprintf(err, errlen, "PW_BIND_ADDR %s is not an IPv4 address", p->cfg.bind_addr);
        return -1;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ITC | MHD_USE_ERROR_LOG;
    p->httpd = MHD_start_daemon(flags, (uint16_t)p->cfg.http_port, NULL, NULL, pw_rest_handle, p,
                                MHD_OPTION_EXTERNAL_LOGGER, pw_rest_mhd_log, p,
                                MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                                MHD_OPTION_THREAD_POOL_SIZE, (unsigned)p->cfg.http_threads,
                                MHD_OPTION_CONNECTION_LIMIT, (unsigned)p->cfg.http_conn_limit,
                                MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)p->cfg.http_idle_timeout_s,
                                MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)PW_REST_CONN_MEMORY,
                                MHD_OPTION_NOTIFY_COMPLETED, pw_rest_completed, p, MHD_OPTION_END);
    if (!p->httpd) {
        snprintf(err, errlen, "cannot listen on %s:%ld", p->cfg.bind_addr, p->cfg.http_port);
        return -1;
    }
    return 0;
}

void pw_rest_quiesce(pw_producer *p)
{
    if (p->httpd) {
        MHD_socket s = MHD_quiesce_daemon(p->httpd);
        if (s != MHD_INVALID_SOCKET) {
            close(s);
        }
    }
}

void pw_rest_stop(pw_producer *p)
{
    if (p->httpd) {
        MHD_stop_daemon(p->httpd);
    }
    p->httpd = NULL;
}
