/* mx_pipeline: the pipeline view — store marks, Kafka offsets, verdicts, the
 * latency merge, and its REST and gRPC handlers (see mx_pipeline.h). */
#include "mx_pipeline.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mx_json.h"
#include "pw_env.h"
#include "pw_http.h"
#include "pw_log.h"
#include "pw_pipeline.h"
#include "pw_schema.h"
#include "pw_time.h"

#define MX_PIPE_MAX_PARTS 256
#define MX_PIPE_MAX_REASONS 64

struct mx_pipeline {
    mx_service *svc;
    mx_kafka *kafka;
    char *why; /* no Kafka: why */
    char *topics[2];
    int64_t stall_ms;
    long kafka_timeout_ms;
};

static const mx_param_spec mx_pipeline_params[] = {
    {"window_minutes", MX_PARAM_UINT, 1, 60, 5, offsetof(mx_params, window_minutes)},
};

/* For instrumentation and parameter parsing only: the view is run here. */
static const mx_view mx_pipeline_view = {
    "pipeline",
    MX_PIPELINE_PATH,
    MX_PIPELINE_RPC,
    &iot__v1__pipeline_request__descriptor,
    &iot__v1__pipeline_response__descriptor,
    mx_pipeline_params,
    1,
    NULL,
};

mx_pipeline *mx_pipeline_new(mx_service *svc, mx_kafka *kafka, const char *why,
                             const mx_pipeline_options *o)
{
    mx_pipeline *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        mx_kafka_free(kafka);
        return NULL;
    }
    p->svc = svc;
    p->kafka = kafka;
    p->why = strdup(why ? why : "not configured");
    p->topics[0] = strdup(o->topics[0]);
    p->topics[1] = strdup(o->topics[1]);
    p->stall_ms = (int64_t)o->stall_seconds * 1000;
    p->kafka_timeout_ms = o->kafka_timeout_ms;
    if (p->why == NULL || p->topics[0] == NULL || p->topics[1] == NULL) {
        mx_pipeline_free(p);
        return NULL;
    }
    return p;
}

void mx_pipeline_free(mx_pipeline *p)
{
    if (p == NULL) {
        return;
    }
    mx_kafka_free(p->kafka);
    free(p->why);
    free(p->topics[0]);
    free(p->topics[1]);
    free(p);
}

mx_pipeline *mx_pipeline_from_env(mx_service *svc, char *err, size_t errlen)
{
    mx_pipeline_options o = {{pw_env_str("PW_TOPIC_TELEMETRY", "sensor-telemetry"),
                              pw_env_str("PW_TOPIC_ALERTS", "sensor-alerts")},
                             30,
                             1000};
    if (pw_env_long("PW_METRICS_STALL_SECONDS", 30, 1, 3600, &o.stall_seconds, err, errlen) != 0 ||
        pw_env_long("PW_METRICS_KAFKA_TIMEOUT_MS", 1000, 50, 10000, &o.kafka_timeout_ms, err,
                    errlen) != 0) {
        return NULL;
    }
    char why[256] = "";
    mx_kafka *k =
        mx_kafka_new(pw_env_str("PW_KAFKA_GROUP", "plantwatch-consumers"), why, sizeof(why));
    if (k == NULL) {
        pw_log(PW_LOG_WARN, "kafka_not_configured",
               "the pipeline view answers from the store only: %s", why);
    }
    mx_pipeline *p = mx_pipeline_new(svc, k, why, &o);
    if (p == NULL) {
        snprintf(err, errlen, "out of memory");
    }
    return p;
}

/* ---- verdicts -------------------------------------------------------------- */

int mx_pipeline_judge(Iot__V1__PartitionPipeline *pp, int kafka_known, int64_t now_ms,
                      int64_t stall_ms)
{
    const char *v = MX_VERDICT_UNKNOWN;
    pp->stalled_since_ms = 0;
    if (kafka_known) {
        pp->lag = pp->accepted - pp->committed;
        pp->difference = pp->accepted - pp->counted - pp->lag;
        if (pp->lag == 0 && pp->difference == 0) {
            v = MX_VERDICT_IN_SYNC;
        } else if (pp->last_stored_ms > 0 && now_ms - pp->last_stored_ms < stall_ms) {
            v = MX_VERDICT_CATCHING_UP;
        } else {
            v = MX_VERDICT_STALLED;
            pp->stalled_since_ms = pp->last_stored_ms;
        }
    } else {
        pp->accepted = 0;
        pp->committed = 0;
        pp->lag = 0;
        pp->difference = 0;
    }
    pp->verdict = strdup(v);
    return pp->verdict ? 0 : -1;
}

/* Appends "a:1, b:2" names of the partitions with verdict v; their lag sum. */
static int64_t list_of(const Iot__V1__PipelineResponse *r, const char *v, char *out, size_t len,
                       size_t *count)
{
    int64_t lag = 0;
    size_t used = 0;
    *count = 0;
    out[0] = '\0';
    for (size_t i = 0; i < r->n_partitions; i++) {
        const Iot__V1__PartitionPipeline *pp = r->partitions[i];
        if (strcmp(pp->verdict, v) != 0) {
            continue;
        }
        lag += pp->lag;
        (*count)++;
        if (used < len) {
            int w = snprintf(out + used, len - used, "%s%s:%d", used ? ", " : "", pp->topic,
                             (int)pp->partition);
            used += w > 0 ? (size_t)w : 0;
        }
    }
    return lag;
}

int mx_pipeline_summarize(Iot__V1__PipelineResponse *r, const char *kafka_error, long stall_s)
{
    char buf[1024], stalled[400], catching[400];
    size_t ns = 0, nc = 0;
    int64_t counted = 0;
    for (size_t i = 0; i < r->n_partitions; i++) {
        counted += r->partitions[i]->counted;
    }
    int64_t ls = list_of(r, MX_VERDICT_STALLED, stalled, sizeof(stalled), &ns);
    int64_t lc = list_of(r, MX_VERDICT_CATCHING_UP, catching, sizeof(catching), &nc);
    r->in_sync = kafka_error == NULL && r->n_partitions > 0 && ns == 0 && nc == 0;
    if (kafka_error != NULL) {
        snprintf(buf, sizeof(buf),
                 "Kafka is unreachable (%s): accepted and committed offsets are unknown; the "
                 "consumers counted %lld records of %zu partitions",
                 kafka_error, (long long)counted, r->n_partitions);
    } else if (r->n_partitions == 0) {
        snprintf(buf, sizeof(buf), "no ingest partitions found");
    } else if (r->in_sync) {
        snprintf(buf, sizeof(buf), "%s", MX_VERDICT_IN_SYNC);
    } else if (ns > 0) {
        int w = snprintf(buf, sizeof(buf),
                         "stalled: %zu of %zu partitions (%s) have lag %lld and nothing was "
                         "counted for %ld s",
                         ns, r->n_partitions, stalled, (long long)ls, stall_s);
        if (nc > 0 && w > 0 && (size_t)w < sizeof(buf)) {
            snprintf(buf + w, sizeof(buf) - (size_t)w, "; %zu catching up (%s) with lag %lld", nc,
                     catching, (long long)lc);
        }
    } else {
        snprintf(buf, sizeof(buf), "catching up: %zu of %zu partitions (%s) have lag %lld", nc,
                 r->n_partitions, catching, (long long)lc);
    }
    r->verdict = strdup(buf);
    return r->verdict ? 0 : -1;
}

/* ---- store marks ------------------------------------------------------------ */

typedef struct {
    char *topic;
    int32_t partition;
    int64_t hw, last_ms;
    uint64_t dead_letters;
} mx_mark;

typedef struct {
    mx_mark marks[MX_PIPE_MAX_PARTS];
    size_t n;
    char *reasons[MX_PIPE_MAX_REASONS];
    uint64_t reason_counts[MX_PIPE_MAX_REASONS];
    size_t nreasons;
    pw_lat_hist hist;
} mx_marks;

static void marks_free(mx_marks *m)
{
    for (size_t i = 0; i < m->n; i++) {
        free(m->marks[i].topic);
    }
    for (size_t i = 0; i < m->nreasons; i++) {
        free(m->reasons[i]);
    }
}

static int add_reason(mx_marks *m, const char *reason, uint64_t n)
{
    size_t i = 0;
    while (i < m->nreasons && strcmp(m->reasons[i], reason) != 0) {
        i++;
    }
    if (i == m->nreasons) {
        if (m->nreasons == MX_PIPE_MAX_REASONS || (m->reasons[i] = strdup(reason)) == NULL) {
            return -1;
        }
        m->nreasons++;
    }
    m->reason_counts[i] += n;
    return 0;
}

static uint64_t read_reasons(mx_marks *m, const bson_t *doc)
{
    bson_iter_t it, sub;
    uint64_t total = 0;
    if (!bson_iter_init_find(&it, doc, PW_F_DEAD_LETTERS) || !BSON_ITER_HOLDS_DOCUMENT(&it) ||
        !bson_iter_recurse(&it, &sub)) {
        return 0;
    }
    while (bson_iter_next(&sub)) {
        int64_t n = bson_iter_as_int64(&sub);
        if (n > 0 && add_reason(m, bson_iter_key(&sub), (uint64_t)n) == 0) {
            total += (uint64_t)n;
        }
    }
    return total;
}

typedef struct {
    mx_marks *m;
    int64_t from_minute, to_minute;
} mx_lat_window;

/* Merges a histogram of the mark when its minute lies in the window. */
static void mx_pipe_latency_entry(void *ctx, int64_t minute, const uint8_t *h, uint32_t hlen)
{
    mx_lat_window *w = ctx;
    if (minute >= w->from_minute && minute <= w->to_minute) {
        pw_lat_unpack_add(&w->m->hist, h, hlen);
    }
}

static int add_mark(mx_marks *m, const bson_t *doc, int64_t from_minute, int64_t to_minute)
{
    if (m->n == MX_PIPE_MAX_PARTS) {
        return 0;
    }
    mx_mark *k = &m->marks[m->n];
    if ((k->topic = strdup(mx_bson_str(doc, PW_F_TOPIC, ""))) == NULL) {
        return -1;
    }
    k->partition = (int32_t)mx_bson_int(doc, PW_F_PARTITION, -1);
    k->hw = mx_bson_int(doc, PW_F_HW, -1);
    k->last_ms = mx_bson_time_ms(doc, PW_F_LAST_MS, 0);
    k->dead_letters = read_reasons(m, doc);
    mx_lat_window w = {m, from_minute, to_minute};
    pw_lat_each(doc, mx_pipe_latency_entry, &w);
    m->n++;
    return 0;
}

static int read_marks(mx_store *store, mx_marks *m, const mx_params *p, char *err, size_t errlen)
{
    int64_t to_minute = p->now_ms - p->now_ms % 60000;
    int64_t from_minute = to_minute - (int64_t)p->window_minutes * 60000;
    bson_t opts = BSON_INITIALIZER;
    int rc = mx_store_limit(store, &opts, p->deadline_us, err, errlen);
    if (rc != 0) {
        bson_destroy(&opts);
        return rc;
    }
    mongoc_client_t *client = mx_store_pop(store);
    mongoc_collection_t *coll = mx_store_collection(store, client, PW_COLL_PROGRESS);
    bson_t filter = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&filter, PW_F_KIND, PW_PIPE_KIND);
    mx_store_check(store, coll, &filter, "pipeline marks", 0);
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, &filter, &opts, NULL);
    const bson_t *doc;
    while (rc == 0 && mongoc_cursor_next(cur, &doc)) {
        if (add_mark(m, doc, from_minute, to_minute) != 0) {
            snprintf(err, errlen, "out of memory");
            rc = MX_STORE_FAILED;
        }
    }
    bson_error_t error;
    if (rc == 0 && mongoc_cursor_error(cur, &error)) {
        rc = mx_store_failure(store, &error, p->deadline_us, err, errlen);
    }
    mongoc_cursor_destroy(cur);
    bson_destroy(&opts);
    bson_destroy(&filter);
    mongoc_collection_destroy(coll);
    mx_store_push(store, client);
    return rc;
}

/* ---- the answer -------------------------------------------------------------- */

static const mx_mark *mark_find(const mx_marks *m, const char *topic, int32_t partition)
{
    for (size_t i = 0; i < m->n; i++) {
        if (m->marks[i].partition == partition && strcmp(m->marks[i].topic, topic) == 0) {
            return &m->marks[i];
        }
    }
    return NULL;
}

static Iot__V1__PartitionPipeline *add_partition(Iot__V1__PipelineResponse *r, const char *topic,
                                                 int32_t partition, const mx_mark *mk)
{
    Iot__V1__PartitionPipeline *pp = malloc(sizeof(*pp));
    if (pp == NULL) {
        return NULL;
    }
    iot__v1__partition_pipeline__init(pp);
    r->partitions[r->n_partitions++] = pp;
    if ((pp->topic = strdup(topic)) == NULL) {
        return NULL;
    }
    pp->partition = partition;
    if (mk != NULL) {
        pp->counted = mk->hw + 1;
        pp->last_stored_ms = mk->last_ms;
        pp->dead_letters = mk->dead_letters;
    }
    return pp;
}

static int cmp_partition(const void *a, const void *b)
{
    const Iot__V1__PartitionPipeline *x = *(Iot__V1__PartitionPipeline *const *)a;
    const Iot__V1__PartitionPipeline *y = *(Iot__V1__PartitionPipeline *const *)b;
    int c = strcmp(x->topic, y->topic);
    if (c != 0) {
        return c;
    }
    return x->partition < y->partition ? -1 : x->partition > y->partition;
}

static int is_ingest_topic(const mx_pipeline *p, const char *topic)
{
    return strcmp(topic, p->topics[0]) == 0 || strcmp(topic, p->topics[1]) == 0;
}

/* The partitions: Kafka's when it answered, else those the store has marks of. */
static int fill_partitions(const mx_pipeline *p, Iot__V1__PipelineResponse *r, const mx_marks *m,
                           const mx_kafka_part *parts, size_t nparts, int kafka_ok)
{
    size_t cap = (kafka_ok ? nparts : m->n) + 1;
    if ((r->partitions = calloc(cap, sizeof(*r->partitions))) == NULL) {
        return -1;
    }
    if (kafka_ok) {
        for (size_t i = 0; i < nparts; i++) {
            Iot__V1__PartitionPipeline *pp =
                add_partition(r, parts[i].topic, parts[i].partition,
                              mark_find(m, parts[i].topic, parts[i].partition));
            if (pp == NULL) {
                return -1;
            }
            pp->accepted = parts[i].end;
            pp->committed = parts[i].committed >= 0 ? parts[i].committed : 0;
        }
    } else {
        for (size_t i = 0; i < m->n; i++) {
            if (is_ingest_topic(p, m->marks[i].topic) &&
                add_partition(r, m->marks[i].topic, m->marks[i].partition, &m->marks[i]) == NULL) {
                return -1;
            }
        }
    }
    qsort(r->partitions, r->n_partitions, sizeof(*r->partitions), cmp_partition);
    return 0;
}

static int cmp_reason(const void *a, const void *b)
{
    const Iot__V1__ReasonCount *x = *(Iot__V1__ReasonCount *const *)a;
    const Iot__V1__ReasonCount *y = *(Iot__V1__ReasonCount *const *)b;
    if (x->count != y->count) {
        return x->count > y->count ? -1 : 1;
    }
    return strcmp(x->reason, y->reason);
}

static int fill_reasons(Iot__V1__PipelineResponse *r, const mx_marks *m)
{
    if ((r->dead_letters = calloc(m->nreasons + 1, sizeof(*r->dead_letters))) == NULL) {
        return -1;
    }
    for (size_t i = 0; i < m->nreasons; i++) {
        Iot__V1__ReasonCount *rc = malloc(sizeof(*rc));
        if (rc == NULL) {
            return -1;
        }
        iot__v1__reason_count__init(rc);
        r->dead_letters[r->n_dead_letters++] = rc;
        if ((rc->reason = strdup(m->reasons[i])) == NULL) {
            return -1;
        }
        rc->count = m->reason_counts[i];
    }
    qsort(r->dead_letters, r->n_dead_letters, sizeof(*r->dead_letters), cmp_reason);
    return 0;
}

/* Kafka's offsets within what is left of the store deadline. */
static int kafka_offsets(const mx_pipeline *p, const mx_params *prm, mx_kafka_part **parts,
                         size_t *n, char *kerr, size_t kerrlen)
{
    if (p->kafka == NULL) {
        snprintf(kerr, kerrlen, "%s", p->why);
        return -1;
    }
    long ms = p->kafka_timeout_ms;
    int64_t left = (prm->deadline_us - pw_monotonic_us()) / 1000;
    if (left < ms) {
        ms = (long)left;
    }
    if (ms <= 0) {
        snprintf(kerr, kerrlen, "no time left within the store deadline");
        return -1;
    }
    const char *topics[2] = {p->topics[0], p->topics[1]};
    return mx_kafka_offsets(p->kafka, topics, 2, (int)ms, parts, n, kerr, kerrlen);
}

static int build(const mx_pipeline *p, const mx_params *prm, const mx_marks *m,
                 Iot__V1__PipelineResponse *r)
{
    mx_kafka_part *parts = NULL;
    size_t nparts = 0;
    char kerr[300];
    int kafka_ok = kafka_offsets(p, prm, &parts, &nparts, kerr, sizeof(kerr)) == 0;
    if (!kafka_ok) {
        pw_log(PW_LOG_DEBUG, "pipeline_kafka_unavailable", "%s", kerr);
    }
    int rc = fill_partitions(p, r, m, parts, nparts, kafka_ok);
    mx_kafka_parts_free(parts, nparts);
    for (size_t i = 0; rc == 0 && i < r->n_partitions; i++) {
        rc = mx_pipeline_judge(r->partitions[i], kafka_ok, prm->now_ms, p->stall_ms);
    }
    if (rc == 0) {
        rc = fill_reasons(r, m);
    }
    if (rc == 0) {
        rc = mx_pipeline_summarize(r, kafka_ok ? NULL : kerr, (long)(p->stall_ms / 1000));
    }
    r->latency_p50_ms = pw_lat_quantile(&m->hist, 0.5);
    r->latency_p99_ms = pw_lat_quantile(&m->hist, 0.99);
    r->latency_samples = m->hist.total;
    r->window_minutes = prm->window_minutes;
    r->as_of_ms = prm->now_ms;
    return rc;
}

/* Computes the answer within a computation slot; 0 with *out, or an
 * MX_STORE_* / MX_RUN_BUSY code with err. */
static int compute(mx_pipeline *p, mx_params *prm, Iot__V1__PipelineResponse **out, char *err,
                   size_t errlen)
{
    mx_service *s = p->svc;
    if (mx_gate_enter(s->gate, s->queue_wait_ms) != 0) {
        snprintf(err, errlen, "busy: all %u store computations are in use, retry shortly",
                 mx_gate_slots(s->gate));
        return MX_RUN_BUSY;
    }
    prm->deadline_us = mx_store_deadline(s->store);
    mx_marks *m = calloc(1, sizeof(*m));
    Iot__V1__PipelineResponse *r = malloc(sizeof(*r));
    int rc = MX_STORE_FAILED;
    if (m != NULL && r != NULL) {
        iot__v1__pipeline_response__init(r);
        rc = read_marks(s->store, m, prm, err, errlen);
        if (rc == 0 && build(p, prm, m, r) != 0) {
            snprintf(err, errlen, "out of memory");
            rc = MX_STORE_FAILED;
        }
    } else {
        snprintf(err, errlen, "out of memory");
    }
    mx_gate_leave(s->gate);
    if (m != NULL) {
        marks_free(m);
        free(m);
    }
    if (rc != 0 && r != NULL) {
        protobuf_c_message_free_unpacked(&r->base, NULL);
        r = NULL;
    }
    *out = r;
    return rc;
}

/* compute, timed and counted like every view. */
static int run_view(mx_pipeline *p, mx_params *prm, const char *protocol,
                    Iot__V1__PipelineResponse **out, char *err, size_t errlen)
{
    int64_t t0 = pw_monotonic_us();
    int rc = compute(p, prm, out, err, errlen);
    const char *labels[] = {mx_pipeline_view.name, protocol};
    pw_prom_observe(p->svc->latency, labels, (double)(pw_monotonic_us() - t0) / 1e6);
    const char *outcome = rc == 0                  ? MX_OUTCOME_OK
                          : rc == MX_STORE_TIMEOUT ? MX_OUTCOME_TIMEOUT
                          : rc == MX_RUN_BUSY      ? MX_OUTCOME_BUSY
                                                   : MX_OUTCOME_UNAVAILABLE;
    mx_service_count(p->svc, &mx_pipeline_view, protocol, outcome);
    if (rc != 0 && rc != MX_RUN_BUSY) {
        pw_log(PW_LOG_ERROR, "view_failed", "pipeline (%s): %s", protocol, err);
    }
    return rc;
}

/* ---- REST ----------------------------------------------------------------------- */

typedef struct {
    mx_params *params;
    unsigned seen;
    mx_param_error *err;
} mx_pipe_query;

static enum MHD_Result collect_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    (void)kind;
    mx_pipe_query *q = cls;
    mx_params_set_text(mx_pipeline_params, 1, q->params, &q->seen, key, value, q->err);
    return MHD_YES;
}

enum MHD_Result mx_pipeline_serve_rest(mx_pipeline *p, struct MHD_Connection *c)
{
    mx_params prm;
    mx_param_error perr;
    mx_param_error_init(&perr);
    mx_params_defaults(mx_pipeline_params, 1, &prm);
    mx_pipe_query q = {&prm, 0, &perr};
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, collect_arg, &q);
    if (perr.count > 0) {
        char msg[600];
        snprintf(msg, sizeof(msg), "invalid parameter: %s", perr.message);
        json_t *details = json_incref(perr.details);
        mx_param_error_free(&perr);
        mx_service_count(p->svc, &mx_pipeline_view, "rest", MX_OUTCOME_INVALID);
        return pw_http_send_error(c, MHD_HTTP_BAD_REQUEST, "invalid_parameter", msg, details);
    }
    mx_param_error_free(&perr);
    prm.now_ms = pw_now_ms();
    Iot__V1__PipelineResponse *r = NULL;
    char err[300];
    int rc = run_view(p, &prm, "rest", &r, err, sizeof(err));
    if (rc != 0) {
        return pw_http_send_unavailable(c, rc == MX_RUN_BUSY ? 1 : 5, err);
    }
    json_t *body = mx_json_from_message(&r->base);
    protobuf_c_message_free_unpacked(&r->base, NULL);
    if (body == NULL) {
        return pw_http_send_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", "out of memory",
                                  NULL);
    }
    return pw_http_send_json(c, MHD_HTTP_OK, body);
}

/* ---- gRPC ----------------------------------------------------------------------- */

static void finish_invalid(pw_grpc_call *call, mx_pipeline *p, const char *msg)
{
    mx_service_count(p->svc, &mx_pipeline_view, "grpc", MX_OUTCOME_INVALID);
    pw_grpc_call_finish(call, NULL, 0, GRPC_STATUS_INVALID_ARGUMENT, msg);
}

/* The request's parameters; 0, or -1 after finishing the call. */
static int grpc_params(pw_grpc_call *call, mx_pipeline *p, mx_params *prm)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int got = pw_grpc_call_recv(call, &buf, &len);
    if (got != 1) {
        pw_grpc_call_finish(call, NULL, 0,
                            got == 0 ? GRPC_STATUS_INVALID_ARGUMENT : GRPC_STATUS_CANCELLED,
                            got == 0 ? "missing request message" : "call cancelled");
        return -1;
    }
    ProtobufCMessage *req =
        protobuf_c_message_unpack(&iot__v1__pipeline_request__descriptor, NULL, len, buf);
    free(buf);
    if (req == NULL) {
        finish_invalid(call, p, "malformed request message");
        return -1;
    }
    mx_param_error perr;
    mx_param_error_init(&perr);
    mx_params_defaults(mx_pipeline_params, 1, prm);
    int rc = mx_params_from_message(mx_pipeline_params, 1, req, prm, &perr);
    protobuf_c_message_free_unpacked(req, NULL);
    if (rc != 0) {
        char msg[600];
        snprintf(msg, sizeof(msg), "invalid parameter: %s", perr.message);
        finish_invalid(call, p, msg);
    }
    mx_param_error_free(&perr);
    return rc == 0 ? 0 : -1;
}

static void handle_pipeline(pw_grpc_call *call, void *ctx)
{
    mx_pipeline *p = ctx;
    mx_params prm;
    if (grpc_params(call, p, &prm) != 0) {
        return;
    }
    prm.now_ms = pw_now_ms();
    Iot__V1__PipelineResponse *r = NULL;
    char err[300];
    int rc = run_view(p, &prm, "grpc", &r, err, sizeof(err));
    if (rc != 0) {
        pw_grpc_call_finish(
            call, NULL, 0,
            rc == MX_RUN_BUSY ? GRPC_STATUS_RESOURCE_EXHAUSTED : GRPC_STATUS_UNAVAILABLE, err);
        return;
    }
    size_t n = protobuf_c_message_get_packed_size(&r->base);
    uint8_t *out = malloc(n ? n : 1);
    if (out == NULL) {
        protobuf_c_message_free_unpacked(&r->base, NULL);
        pw_grpc_call_finish(call, NULL, 0, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    protobuf_c_message_pack(&r->base, out);
    protobuf_c_message_free_unpacked(&r->base, NULL);
    pw_grpc_call_finish(call, out, n, GRPC_STATUS_OK, NULL);
    free(out);
}

int mx_pipeline_register_grpc(mx_pipeline *p, pw_grpc_server *server)
{
    return pw_grpc_server_add_method(server, MX_PIPELINE_RPC, handle_pipeline, p);
}
