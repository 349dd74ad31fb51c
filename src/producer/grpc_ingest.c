/* grpc_ingest: IngestService over the gRPC C core (pw_grpc). Publish (unary)
 * and PublishStream (client streaming) decode PublishRequests, validate them
 * with the same code as REST, enqueue the records and answer only after the
 * last delivery report: OK with the tokens, INVALID_ARGUMENT naming the field,
 * UNAVAILABLE when Kafka could not take the records in time. Oversized
 * messages are refused by gRPC itself (RESOURCE_EXHAUSTED). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest.h"
#include "producer.h"
#include "pw_log.h"
#include "pw_time.h"
#include "trust.h"

#define PW_GRPC_MSG_LEN 512

typedef struct {
    pw_producer *p;
    pw_grpc_call *call;
    const char *method;
    char consumer[129];
    char meta_key[PW_MAX_ID_LEN + 1]; /* idempotency-key metadata, "" if absent */
    int meta_key_bad;
    pw_ingest_batch batch;
    pw_delivery_sync sync;
    unsigned readings, alerts; /* running indexes for the metadata key */
    size_t requests;
    int streaming;
    int64_t start_us;
} pw_grpc_ctx;

static const char *pw_grpc_code_name(grpc_status_code c)
{
    switch (c) {
    case GRPC_STATUS_OK:
        return "OK";
    case GRPC_STATUS_INVALID_ARGUMENT:
        return "INVALID_ARGUMENT";
    case GRPC_STATUS_UNAVAILABLE:
        return "UNAVAILABLE";
    case GRPC_STATUS_RESOURCE_EXHAUSTED:
        return "RESOURCE_EXHAUSTED";
    case GRPC_STATUS_CANCELLED:
        return "CANCELLED";
    default:
        return "INTERNAL";
    }
}

static void pw_grpc_ctx_init(pw_grpc_ctx *g, pw_producer *p, pw_grpc_call *call, const char *method)
{
    memset(g, 0, sizeof(*g));
    g->p = p;
    g->call = call;
    g->method = method;
    g->start_us = pw_monotonic_us();
    pw_ingest_batch_init(&g->batch);
    if (!pw_grpc_call_metadata(call, "x-consumer-username", g->consumer, sizeof(g->consumer)) ||
        !g->consumer[0])
        snprintf(g->consumer, sizeof(g->consumer), "anonymous");
    char key[512];
    if (pw_grpc_call_metadata(call, "idempotency-key", key, sizeof(key))) {
        size_t n = strlen(key);
        if (pw_idempotency_key_valid(key) && n < sizeof(g->meta_key))
            memcpy(g->meta_key, key, n + 1);
        else
            g->meta_key_bad = 1;
    }
    atomic_fetch_add(&p->inflight, 1);
    pw_delivery_sync_begin(&g->sync);
}

/* Waits for every enqueued record, sends the answer and releases g. */
static void pw_grpc_finish(pw_grpc_ctx *g, grpc_status_code code, const char *message)
{
    pw_delivery_sync_wait(&g->sync);
    int failed = atomic_load(&g->sync.d.failed);
    char msg[PW_GRPC_MSG_LEN];
    if (code == GRPC_STATUS_OK && failed) {
        code = GRPC_STATUS_UNAVAILABLE;
        snprintf(msg, sizeof(msg), "Kafka did not acknowledge %d of %zu records (%s); retry",
                 failed, g->batch.n,
                 rd_kafka_err2str((rd_kafka_resp_err_t)atomic_load(&g->sync.d.first_err)));
        message = msg;
    }
    uint8_t *buf = NULL;
    size_t len = 0;
    if (code == GRPC_STATUS_OK) {
        Iot__V1__PublishResponse resp = IOT__V1__PUBLISH_RESPONSE__INIT;
        resp.accepted = (uint32_t)g->batch.n;
        resp.n_ids = g->batch.n;
        resp.ids = malloc((g->batch.n ? g->batch.n : 1) * sizeof(char *));
        for (size_t i = 0; resp.ids && i < g->batch.n; i++)
            resp.ids[i] = g->batch.msgs[i].token;
        len = iot__v1__publish_response__get_packed_size(&resp);
        buf = malloc(len ? len : 1);
        if (buf && resp.ids)
            iot__v1__publish_response__pack(&resp, buf);
        else
            code = GRPC_STATUS_INTERNAL, message = "out of memory";
        free(resp.ids);
    }
    pw_grpc_call_finish(g->call, buf, len, code, code == GRPC_STATUS_OK ? NULL : message);
    free(buf);
    const char *labels[] = {g->method, pw_grpc_code_name(code)};
    pw_prom_add(g->p->grpc_requests, labels, 1);
    if (g->p->cfg.log_requests) {
        json_t *tokens = json_array();
        for (size_t i = 0; i < g->batch.n && i < 20; i++)
            json_array_append_new(tokens, json_string(g->batch.msgs[i].token));
        json_t *f =
            json_pack("{s:s,s:s,s:s,s:o,s:I,s:I,s:f}", "rpc", g->method, "consumer", g->consumer,
                      "code", pw_grpc_code_name(code), "tokens", tokens, "messages",
                      (json_int_t)g->batch.n, "requests", (json_int_t)g->requests, "duration_ms",
                      (double)(pw_monotonic_us() - g->start_us) / 1000.0);
        int server_side = code != GRPC_STATUS_OK && code != GRPC_STATUS_INVALID_ARGUMENT;
        pw_log_fields(server_side ? PW_LOG_WARN : PW_LOG_INFO, "rpc", f, "%s -> %s%s%s", g->method,
                      pw_grpc_code_name(code), message ? ": " : "", message ? message : "");
    }
    pw_delivery_sync_destroy(&g->sync);
    pw_ingest_batch_free(&g->batch);
    atomic_fetch_sub(&g->p->inflight, 1);
}

/* Decodes, validates and enqueues one PublishRequest. Returns OK or the
 * status to end the call with (msg filled). */
static grpc_status_code pw_grpc_publish_one(pw_grpc_ctx *g, const uint8_t *buf, size_t len,
                                            char *msg, size_t msglen)
{
    Iot__V1__PublishRequest *req = iot__v1__publish_request__unpack(NULL, len, buf);
    if (!req) {
        snprintf(msg, msglen, "request is not a valid iot.v1.PublishRequest");
        return GRPC_STATUS_INVALID_ARGUMENT;
    }
    const char *key = NULL;
    unsigned rbase = 0, abase = 0;
    if (req->idempotency_key && req->idempotency_key[0]) {
        if (!pw_idempotency_key_valid(req->idempotency_key)) {
            iot__v1__publish_request__free_unpacked(req, NULL);
            snprintf(msg, msglen, "idempotency_key: must be 1..128 visible ASCII characters");
            return GRPC_STATUS_INVALID_ARGUMENT;
        }
        key = req->idempotency_key;
    } else if (g->meta_key[0]) {
        key = g->meta_key; /* one key for the whole call: indexes run across it */
        rbase = g->readings;
        abase = g->alerts;
    }
    pw_ingest_meta meta = {.consumer = g->consumer,
                           .idem_key = key,
                           .source = IOT__V1__SOURCE__SOURCE_GRPC,
                           .received_ms = pw_now_ms()};
    size_t start = g->batch.n;
    int n = pw_ingest_from_request(&g->batch, req, &meta, rbase, abase, msg, msglen);
    if (n >= 0) {
        g->readings += (unsigned)req->n_readings;
        g->alerts += (unsigned)req->n_alerts;
    }
    iot__v1__publish_request__free_unpacked(req, NULL);
    if (n < 0)
        return GRPC_STATUS_INVALID_ARGUMENT;
    g->requests++;
    /* A stream waits for room as long as a record may wait for delivery: a
     * full queue then slows the client through HTTP/2 flow control. */
    long wait_ms = g->streaming ? g->p->cfg.delivery_timeout_ms : g->p->cfg.enqueue_timeout_ms;
    for (size_t i = start; i < g->batch.n; i++) {
        pw_send_result sr = pw_kafka_out_send(&g->p->kafka, &g->sync.d, &g->batch.msgs[i], wait_ms);
        if (sr != PW_SEND_OK) {
            snprintf(msg, msglen, "Kafka cannot take the records now (%s); retry",
                     sr == PW_SEND_QUEUE_FULL ? "local queue full" : "producer error");
            return GRPC_STATUS_UNAVAILABLE;
        }
    }
    return GRPC_STATUS_OK;
}

static int pw_grpc_refuse_early(pw_grpc_ctx *g)
{
    if (atomic_load(&g->p->stopping)) {
        pw_grpc_finish(g, GRPC_STATUS_UNAVAILABLE, "shutting down");
        return 1;
    }
    if (g->meta_key_bad) {
        pw_grpc_finish(g, GRPC_STATUS_INVALID_ARGUMENT,
                       "idempotency-key: must be 1..128 visible ASCII characters");
        return 1;
    }
    return 0;
}

static void pw_grpc_publish(pw_grpc_call *call, void *ctx)
{
    if (pw_trust_grpc_refused(ctx, call, "Publish")) {
        return;
    }
    pw_grpc_ctx g;
    pw_grpc_ctx_init(&g, ctx, call, "Publish");
    if (pw_grpc_refuse_early(&g))
        return;
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = pw_grpc_call_recv(call, &buf, &len);
    char msg[PW_GRPC_MSG_LEN] = "";
    grpc_status_code code;
    if (rc < 0) {
        code = GRPC_STATUS_CANCELLED;
        snprintf(msg, sizeof(msg), "call failed before the request arrived");
    } else if (rc == 0) {
        code = GRPC_STATUS_INVALID_ARGUMENT;
        snprintf(msg, sizeof(msg), "no request message");
    } else {
        code = pw_grpc_publish_one(&g, buf, len, msg, sizeof(msg));
    }
    free(buf);
    pw_grpc_finish(&g, code, msg);
}

static void pw_grpc_publish_stream(pw_grpc_call *call, void *ctx)
{
    if (pw_trust_grpc_refused(ctx, call, "PublishStream")) {
        return;
    }
    pw_grpc_ctx g;
    pw_grpc_ctx_init(&g, ctx, call, "PublishStream");
    g.streaming = 1;
    if (pw_grpc_refuse_early(&g))
        return;
    char msg[PW_GRPC_MSG_LEN] = "";
    grpc_status_code code = GRPC_STATUS_OK;
    for (;;) {
        uint8_t *buf = NULL;
        size_t len = 0;
        int rc = pw_grpc_call_recv(call, &buf, &len);
        if (rc == 0)
            break;
        if (rc < 0) {
            code = GRPC_STATUS_CANCELLED;
            snprintf(msg, sizeof(msg), "stream failed or was cancelled");
            break;
        }
        char one[PW_GRPC_MSG_LEN - 48];
        code = pw_grpc_publish_one(&g, buf, len, one, sizeof(one));
        free(buf);
        if (code != GRPC_STATUS_OK) {
            snprintf(msg, sizeof(msg), "message %zu: %s", g.requests, one);
            break;
        }
    }
    if (code == GRPC_STATUS_OK && g.requests == 0) {
        code = GRPC_STATUS_INVALID_ARGUMENT;
        snprintf(msg, sizeof(msg), "stream carried no request messages");
    }
    pw_grpc_finish(&g, code, msg);
}

int pw_grpc_ingest_start(pw_producer *p, char *err, size_t errlen)
{
    if (p->cfg.grpc_port == 0)
        return 0;
    char addr[128];
    snprintf(addr, sizeof(addr), "%s:%ld", p->cfg.bind_addr, p->cfg.grpc_port);
    p->grpc = pw_grpc_server_new(addr, (size_t)p->cfg.grpc_max_message, err, errlen);
    if (!p->grpc)
        return -1;
    if (pw_grpc_server_add_method(p->grpc, "/iot.v1.IngestService/Publish", pw_grpc_publish, p) ||
        pw_grpc_server_add_method(p->grpc, "/iot.v1.IngestService/PublishStream",
                                  pw_grpc_publish_stream, p)) {
        snprintf(err, errlen, "cannot register IngestService methods");
        return -1;
    }
    return pw_grpc_server_start(p->grpc, (unsigned)p->cfg.grpc_workers, err, errlen);
}

void pw_grpc_ingest_stop(pw_producer *p, int grace_ms)
{
    if (!p->grpc)
        return;
    pw_grpc_server_stop(p->grpc, grace_ms);
    pw_grpc_server_free(p->grpc);
    p->grpc = NULL;
}
