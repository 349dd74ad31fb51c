/* grpc_ingest: IngestService over the gRPC C core (pw_grpc). Publish (unary)
 * and PublishStream (client streaming) pre-scan each PublishRequest's wire
 * format (prescan.c: counts and lengths, before protobuf-c allocates), decode
 * and validate it with the same code as REST, enqueue the records and answer
 * only after the last delivery report: OK when every record was acknowledged
 * (Publish: with every token), INVALID_ARGUMENT naming the field, UNAVAILABLE
 * when Kafka could not take some records, RESOURCE_EXHAUSTED past a stream's
 * caps. Whenever records were enqueued and the status is not OK, the exact
 * outcome (PublishResponse: counts, ids, first failures) travels in the
 * "pw-publish-response-bin" trailer.
 *
 * Memory: a call keeps at most PW_GRPC_WINDOW request messages in flight
 * (each at most PW_MAX_BATCH records); a stream folds a settled message into
 * counters, a fixed list of failures and a running digest, so its state does
 * not grow with its length. */
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest.h"
#include "prescan.h"
#include "producer.h"
#include "pw_log.h"
#include "pw_time.h"
#include "trust.h"

#define PW_GRPC_MSG_LEN 512
#define PW_GRPC_WINDOW 8 /* request messages of one stream in flight at once */
#define PW_GRPC_LOG_TOKENS 20
#define PW_GRPC_RESULT_TRAILER "pw-publish-response-bin"

/* One request message in flight: its records and their delivery tracker. */
typedef struct {
    pw_ingest_batch batch;
    pw_delivery_sync sync;
    unsigned message; /* position in the call */
    int busy;
} pw_grpc_slot;

typedef struct {
    unsigned message;
    pw_kind kind;
    unsigned index;
    char reason[96];
} pw_grpc_failure;

typedef struct {
    pw_producer *p;
    pw_grpc_call *call;
    const char *method;
    char consumer[129];
    char meta_key[PW_MAX_ID_LEN + 1]; /* idempotency-key metadata, "" if absent */
    int meta_key_bad;
    int streaming;
    pw_grpc_slot slots[PW_GRPC_WINDOW];
    unsigned messages;       /* request messages taken */
    size_t bytes;            /* request bytes received */
    size_t records;          /* records built (tokens assigned) */
    size_t accepted, failed; /* settled records */
    pw_grpc_failure failures[PW_INGEST_MAX_DETAILS];
    size_t nfailures;
    char (*ids)[PW_UUID_LEN]; /* Publish: the one message's tokens ("" if not accepted) */
    size_t nids;
    EVP_MD_CTX *digest; /* PublishStream: SHA-256 over the tokens */
    char log_tokens[PW_GRPC_LOG_TOKENS][PW_UUID_LEN];
    size_t nlog_tokens;
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
    if (!pw_grpc_call_metadata(call, "x-consumer-username", g->consumer, sizeof(g->consumer)) ||
        !g->consumer[0]) {
        snprintf(g->consumer, sizeof(g->consumer), "anonymous");
    }
    char key[512];
    if (pw_grpc_call_metadata(call, "idempotency-key", key, sizeof(key))) {
        size_t n = strlen(key);
        if (pw_idempotency_key_valid(key) && n < sizeof(g->meta_key)) {
            memcpy(g->meta_key, key, n + 1);
        } else {
            g->meta_key_bad = 1;
        }
    }
    atomic_fetch_add(&p->inflight, 1);
}

/* Waits for a slot's deliveries, folds them into the call's counters (and,
 * for Publish, its ids) and frees the slot. */
static void pw_grpc_settle(pw_grpc_ctx *g, pw_grpc_slot *s)
{
    if (!s->busy) {
        return;
    }
    pw_delivery_sync_wait(&s->sync);
    for (size_t i = 0; i < s->batch.n; i++) {
        const pw_ingest_msg *m = &s->batch.msgs[i];
        int ok = m->state == PW_MSG_DELIVERED;
        if (g->ids && i < g->nids) {
            snprintf(g->ids[i], PW_UUID_LEN, "%s", ok ? m->token : "");
        }
        if (ok) {
            g->accepted++;
            continue;
        }
        g->failed++;
        if (g->nfailures < PW_INGEST_MAX_DETAILS) {
            pw_grpc_failure *f = &g->failures[g->nfailures++];
            f->message = s->message;
            f->kind = m->kind;
            f->index = m->index;
            snprintf(f->reason, sizeof(f->reason), "%s", pw_kafka_out_reason(m));
        }
    }
    pw_delivery_sync_destroy(&s->sync);
    pw_ingest_batch_free(&s->batch);
    s->busy = 0;
}

/* Releases a slot whose records were never sent (the message was refused). */
static void pw_grpc_discard(pw_grpc_slot *s)
{
    pw_delivery_sync_wait(&s->sync);
    pw_delivery_sync_destroy(&s->sync);
    pw_ingest_batch_free(&s->batch);
    s->busy = 0;
}

/* The slot for the next request message (settling its previous one). */
static pw_grpc_slot *pw_grpc_take_slot(pw_grpc_ctx *g)
{
    pw_grpc_slot *s = &g->slots[g->messages % PW_GRPC_WINDOW];
    pw_grpc_settle(g, s);
    pw_ingest_batch_init(&s->batch);
    pw_delivery_sync_begin(&s->sync);
    s->message = g->messages;
    s->busy = 1;
    return s;
}

static void pw_grpc_settle_all(pw_grpc_ctx *g)
{
    for (unsigned i = 0; i < PW_GRPC_WINDOW; i++) {
        pw_grpc_settle(g, &g->slots[(g->messages + i) % PW_GRPC_WINDOW]);
    }
}

/* The call's outcome as a packed PublishResponse (malloc'd; NULL on OOM). */
static uint8_t *pw_grpc_pack_result(pw_grpc_ctx *g, size_t *len)
{
    Iot__V1__PublishResponse resp = IOT__V1__PUBLISH_RESPONSE__INIT;
    Iot__V1__PublishFailure fl[PW_INGEST_MAX_DETAILS];
    Iot__V1__PublishFailure *flp[PW_INGEST_MAX_DETAILS];
    char *ids[PW_MAX_BATCH];
    char digest[2 * EVP_MAX_MD_SIZE + 1] = "";
    resp.accepted = (uint32_t)g->accepted;
    resp.failed = (uint32_t)g->failed;
    resp.messages = g->messages;
    for (size_t i = 0; i < g->nids && i < PW_MAX_BATCH; i++) {
        ids[i] = g->ids[i];
    }
    resp.n_ids = g->nids;
    resp.ids = ids;
    for (size_t i = 0; i < g->nfailures; i++) {
        Iot__V1__PublishFailure init = IOT__V1__PUBLISH_FAILURE__INIT;
        fl[i] = init;
        fl[i].message = g->failures[i].message;
        fl[i].kind = (char *)pw_kind_name(g->failures[i].kind);
        fl[i].index = g->failures[i].index;
        fl[i].reason = g->failures[i].reason;
        flp[i] = &fl[i];
    }
    resp.n_failures = g->nfailures;
    resp.failures = flp;
    if (g->digest) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned mdlen = 0;
        if (EVP_DigestFinal_ex(g->digest, md, &mdlen) == 1) {
            for (unsigned i = 0; i < mdlen; i++) {
                snprintf(digest + 2 * i, 3, "%02x", md[i]);
            }
        }
        resp.digest = digest;
    }
    *len = iot__v1__publish_response__get_packed_size(&resp);
    uint8_t *buf = malloc(*len ? *len : 1);
    if (buf) {
        iot__v1__publish_response__pack(&resp, buf);
    }
    return buf;
}

static void pw_grpc_log(pw_grpc_ctx *g, grpc_status_code code, const char *message)
{
    json_t *tokens = json_array();
    for (size_t i = 0; i < g->nlog_tokens; i++) {
        json_array_append_new(tokens, json_string(g->log_tokens[i]));
    }
    json_t *f = json_pack("{s:s,s:s,s:s,s:o,s:I,s:I,s:I,s:I,s:f}", "rpc", g->method, "consumer",
                          g->consumer, "code", pw_grpc_code_name(code), "tokens", tokens,
                          "messages", (json_int_t)g->records, "accepted", (json_int_t)g->accepted,
                          "failed", (json_int_t)g->failed, "requests", (json_int_t)g->messages,
                          "duration_ms", (double)(pw_monotonic_us() - g->start_us) / 1000.0);
    int server_side = code != GRPC_STATUS_OK && code != GRPC_STATUS_INVALID_ARGUMENT;
    pw_log_fields(server_side ? PW_LOG_WARN : PW_LOG_INFO, "rpc", f, "%s -> %s%s%s", g->method,
                  pw_grpc_code_name(code), message ? ": " : "", message ? message : "");
}

/* Waits for every enqueued record, sends the answer and releases g. */
static void pw_grpc_finish(pw_grpc_ctx *g, grpc_status_code code, const char *message)
{
    pw_grpc_settle_all(g);
    char msg[PW_GRPC_MSG_LEN];
    if ((code == GRPC_STATUS_OK || code == GRPC_STATUS_UNAVAILABLE) && g->failed) {
        code = GRPC_STATUS_UNAVAILABLE;
        snprintf(msg, sizeof(msg),
                 "Kafka acknowledged %zu of %zu records (first failure: %s); retry the %zu not "
                 "accepted, listed in the " PW_GRPC_RESULT_TRAILER " trailer",
                 g->accepted, g->records, g->nfailures ? g->failures[0].reason : "?", g->failed);
        message = msg;
    }
    size_t len = 0;
    uint8_t *buf = NULL;
    if (code == GRPC_STATUS_OK || g->records) {
        buf = pw_grpc_pack_result(g, &len);
        if (!buf) {
            code = GRPC_STATUS_INTERNAL;
            message = "out of memory";
        }
    }
    if (code == GRPC_STATUS_OK) {
        pw_grpc_call_finish(g->call, buf, len, code, NULL);
    } else {
        pw_grpc_call_finish_trailer(g->call, NULL, 0, code, message,
                                    buf ? PW_GRPC_RESULT_TRAILER : NULL, buf, len);
    }
    free(buf);
    const char *labels[] = {g->method, pw_grpc_code_name(code)};
    pw_prom_add(g->p->grpc_requests, labels, 1);
    if (g->p->cfg.log_requests) {
        pw_grpc_log(g, code, message);
    }
    free(g->ids);
    EVP_MD_CTX_free(g->digest);
    atomic_fetch_sub(&g->p->inflight, 1);
}

/* Pre-scan (before any allocation per item) and the stream's caps. */
static grpc_status_code pw_grpc_admit(pw_grpc_ctx *g, const uint8_t *buf, size_t len, char *msg,
                                      size_t msglen)
{
    const pw_producer_config *cfg = &g->p->cfg;
    g->bytes += len;
    if (g->streaming && g->bytes > (size_t)cfg->grpc_stream_max_bytes) {
        snprintf(msg, msglen,
                 "stream exceeds %ld bytes (PW_GRPC_STREAM_MAX_BYTES); end it and open a new one",
                 cfg->grpc_stream_max_bytes);
        return GRPC_STATUS_RESOURCE_EXHAUSTED;
    }
    pw_prescan_result pr;
    if (pw_prescan_publish_request(buf, len, &pr) != PW_PRESCAN_OK) {
        snprintf(msg, msglen, "%s", pr.message);
        return GRPC_STATUS_INVALID_ARGUMENT;
    }
    if (g->streaming &&
        g->records + pr.readings + pr.alerts > (size_t)cfg->grpc_stream_max_records) {
        snprintf(msg, msglen,
                 "stream exceeds %ld records (PW_GRPC_STREAM_MAX_RECORDS); end it and open a new "
                 "one",
                 cfg->grpc_stream_max_records);
        return GRPC_STATUS_RESOURCE_EXHAUSTED;
    }
    return GRPC_STATUS_OK;
}

/* The request's key: its own field, else the call's metadata key (then the
 * message's stream position scopes the tokens). NULL key: random tokens. */
static int pw_grpc_meta(pw_grpc_ctx *g, const Iot__V1__PublishRequest *req, pw_ingest_meta *meta,
                        char *msg, size_t msglen)
{
    memset(meta, 0, sizeof(*meta));
    meta->consumer = g->consumer;
    meta->source = IOT__V1__SOURCE__SOURCE_GRPC;
    meta->received_ms = pw_now_ms();
    meta->stream_message = -1;
    if (req->idempotency_key && req->idempotency_key[0]) {
        if (!pw_idempotency_key_valid(req->idempotency_key)) {
            snprintf(msg, msglen, "idempotency_key: must be 1..128 visible ASCII characters");
            return -1;
        }
        meta->idem_key = req->idempotency_key;
    } else if (g->meta_key[0]) {
        meta->idem_key = g->meta_key;
        meta->stream_message = g->streaming ? (long)g->messages : -1;
    }
    return 0;
}

/* Remembers the tokens of a new slot: ids (Publish), digest and log. */
static int pw_grpc_note_tokens(pw_grpc_ctx *g, const pw_ingest_batch *b)
{
    if (!g->streaming) {
        g->ids = calloc(b->n ? b->n : 1, sizeof(*g->ids));
        if (!g->ids) {
            return -1;
        }
        g->nids = b->n;
    }
    for (size_t i = 0; i < b->n; i++) {
        if (g->digest) {
            EVP_DigestUpdate(g->digest, b->msgs[i].token, strlen(b->msgs[i].token));
            EVP_DigestUpdate(g->digest, "\n", 1);
        }
        if (g->nlog_tokens < PW_GRPC_LOG_TOKENS) {
            memcpy(g->log_tokens[g->nlog_tokens++], b->msgs[i].token, PW_UUID_LEN);
        }
    }
    g->records += b->n;
    return 0;
}

/* Sends a slot's records; stops at the first refusal (the rest stays
 * NOT_SENT and is reported so). */
static grpc_status_code pw_grpc_send(pw_grpc_ctx *g, pw_grpc_slot *s, char *msg, size_t msglen)
{
    /* A stream waits for room as long as a record may wait for delivery: a
     * full queue then slows the client through HTTP/2 flow control. */
    long wait_ms = g->streaming ? g->p->cfg.delivery_timeout_ms : g->p->cfg.enqueue_timeout_ms;
    for (size_t i = 0; i < s->batch.n; i++) {
        pw_send_result sr = pw_kafka_out_send(&g->p->kafka, &s->sync.d, &s->batch.msgs[i], wait_ms);
        if (sr != PW_SEND_OK) {
            snprintf(msg, msglen, "Kafka cannot take the records now (%s); retry",
                     sr == PW_SEND_QUEUE_FULL ? "local queue full" : "producer error");
            return GRPC_STATUS_UNAVAILABLE;
        }
    }
    return GRPC_STATUS_OK;
}

/* Pre-scans, decodes, validates and enqueues one PublishRequest. Returns OK
 * or the status to end the call with (msg filled). */
static grpc_status_code pw_grpc_publish_one(pw_grpc_ctx *g, const uint8_t *buf, size_t len,
                                            char *msg, size_t msglen)
{
    grpc_status_code code = pw_grpc_admit(g, buf, len, msg, msglen);
    if (code != GRPC_STATUS_OK) {
        return code;
    }
    Iot__V1__PublishRequest *req = iot__v1__publish_request__unpack(NULL, len, buf);
    if (!req) {
        snprintf(msg, msglen, "request is not a valid iot.v1.PublishRequest");
        return GRPC_STATUS_INVALID_ARGUMENT;
    }
    pw_ingest_meta meta;
    pw_grpc_slot *s = NULL;
    int n = -1;
    if (pw_grpc_meta(g, req, &meta, msg, msglen) == 0) {
        s = pw_grpc_take_slot(g);
        n = pw_ingest_from_request(&s->batch, req, &meta, msg, msglen);
    }
    iot__v1__publish_request__free_unpacked(req, NULL);
    if (n < 0 || pw_grpc_note_tokens(g, &s->batch) != 0) {
        if (s) {
            pw_grpc_discard(s);
        }
        return n < 0 ? GRPC_STATUS_INVALID_ARGUMENT : GRPC_STATUS_INTERNAL;
    }
    g->messages++;
    return pw_grpc_send(g, s, msg, msglen);
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
    if (pw_grpc_refuse_early(&g)) {
        return;
    }
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
    if (pw_grpc_refuse_early(&g)) {
        return;
    }
    char msg[PW_GRPC_MSG_LEN] = "";
    grpc_status_code code = GRPC_STATUS_OK;
    g.digest = EVP_MD_CTX_new();
    if (!g.digest || EVP_DigestInit_ex(g.digest, EVP_sha256(), NULL) != 1) {
        pw_grpc_finish(&g, GRPC_STATUS_INTERNAL, "out of memory");
        return;
    }
    for (;;) {
        uint8_t *buf = NULL;
        size_t len = 0;
        int rc = pw_grpc_call_recv(call, &buf, &len);
        if (rc == 0) {
            break;
        }
        if (rc < 0) {
            code = GRPC_STATUS_CANCELLED;
            snprintf(msg, sizeof(msg), "stream failed or was cancelled");
            break;
        }
        char one[PW_GRPC_MSG_LEN - 48];
        unsigned at = g.messages;
        code = pw_grpc_publish_one(&g, buf, len, one, sizeof(one));
        free(buf);
        if (code != GRPC_STATUS_OK) {
            snprintf(msg, sizeof(msg), "message %u: %s", at, one);
            break;
        }
    }
    if (code == GRPC_STATUS_OK && g.messages == 0) {
        code = GRPC_STATUS_INVALID_ARGUMENT;
        snprintf(msg, sizeof(msg), "stream carried no request messages");
    }
    pw_grpc_finish(&g, code, msg);
}

int pw_grpc_ingest_start(pw_producer *p, char *err, size_t errlen)
{
    if (p->cfg.grpc_port == 0) {
        return 0;
    }
    char addr[128];
    snprintf(addr, sizeof(addr), "%s:%ld", p->cfg.bind_addr, p->cfg.grpc_port);
    p->grpc = pw_grpc_server_new(addr, (size_t)p->cfg.grpc_max_message, err, errlen);
    if (!p->grpc) {
        return -1;
    }
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
    if (!p->grpc) {
        return;
    }
    pw_grpc_server_stop(p->grpc, grace_ms);
    pw_grpc_server_free(p->grpc);
    p->grpc = NULL;
}
