/* mx_service: instrumentation around the views. */
#include "mx_service.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pw_log.h"
#include "pw_time.h"

static const double mx_latency_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                           0.1,   0.25,   0.5,   1.0,  2.5,   5.0};

static double mx_running(void *ctx)
{
    return (double)mx_gate_running(ctx);
}

/* A gauge read from the gate at render time. */
static void register_gate(mx_service *s)
{
    pw_prom_gauge_fn(s->prom, "plantwatch_metrics_computations",
                     "Store computations of views running now.", mx_running, s->gate);
}

int mx_service_init(mx_service *s, mx_store *store, pw_prom *prom, const char *www_dir,
                    const mx_limits *limits)
{
    memset(s, 0, sizeof(*s));
    s->store = store;
    s->prom = prom;
    s->www_dir = www_dir;
    s->queue_wait_ms = limits->queue_wait_ms;
    long cache_ms = limits->cache_ms;
    if ((s->gate = mx_gate_new((unsigned)limits->computations)) == NULL) {
        return -1;
    }
    register_gate(s);
    s->requests = pw_prom_counter(prom, "plantwatch_metrics_requests_total",
                                  "Analytics view requests by view, protocol and outcome.",
                                  "view,protocol,outcome");
    s->latency = pw_prom_histogram(prom, "plantwatch_metrics_view_duration_seconds",
                                   "Time to compute an analytics view, by view and protocol.",
                                   "view,protocol", mx_latency_bounds,
                                   sizeof(mx_latency_bounds) / sizeof(mx_latency_bounds[0]));
    s->cache = pw_prom_counter(prom, "plantwatch_metrics_cache_total",
                               "View answers served from the cache (hit) or computed (miss).",
                               "view,result");
    if (cache_ms > 0 && (s->answers = mx_cache_new(cache_ms, 256)) == NULL) {
        return -1;
    }
    if (s->requests == NULL || s->latency == NULL || s->cache == NULL ||
        mx_view_count > MX_MAX_VIEWS) {
        return -1;
    }
    for (size_t i = 0; i < mx_view_count; i++) {
        s->methods[i].svc = s;
        s->methods[i].view = &mx_views[i];
    }
    return 0;
}

void mx_service_count(mx_service *s, const mx_view *v, const char *protocol, const char *outcome)
{
    const char *labels[] = {v->name, protocol, outcome};
    pw_prom_add(s->requests, labels, 1);
}

void mx_service_free(mx_service *s)
{
    mx_cache_free(s->answers); /* waits for background refreshes, which use the gate */
    s->answers = NULL;
    mx_gate_free(s->gate);
    s->gate = NULL;
}

/* Self-contained (the cache may copy it for a background refresh). */
typedef struct {
    mx_service *svc;
    const mx_view *view;
    mx_params params;
} mx_compute;

/* Packs msg into a malloc'd buffer and frees msg. 0, or -1 (ENOMEM). */
static int pack_answer(ProtobufCMessage *msg, uint8_t **buf, size_t *len, char *err, size_t errlen)
{
    *len = protobuf_c_message_get_packed_size(msg);
    *buf = malloc(*len ? *len : 1);
    if (*buf == NULL) {
        protobuf_c_message_free_unpacked(msg, NULL);
        snprintf(err, errlen, "out of memory");
        return MX_STORE_FAILED;
    }
    protobuf_c_message_pack(msg, *buf);
    protobuf_c_message_free_unpacked(msg, NULL);
    return 0;
}

/* Runs the view on the store within a computation slot and the store
 * deadline, and packs its answer. A request waits up to queue_wait_ms for a
 * slot; a background refresh takes one only if it is free now. */
static int compute_packed(void *ctx, int background, uint8_t **buf, size_t *len, char *err,
                          size_t errlen)
{
    mx_compute *c = ctx;
    mx_service *s = c->svc;
    if (mx_gate_enter(s->gate, background ? 0 : s->queue_wait_ms) != 0) {
        snprintf(err, errlen, "busy: all %u store computations are in use, retry shortly",
                 mx_gate_slots(s->gate));
        return MX_RUN_BUSY;
    }
    ProtobufCMessage *msg = NULL;
    c->params.deadline_us = mx_store_deadline(s->store);
    int rc = c->view->run(s->store, &c->params, &msg, err, errlen);
    mx_gate_leave(s->gate);
    if (rc != 0) {
        return rc < 0 ? rc : MX_STORE_FAILED;
    }
    return pack_answer(msg, buf, len, err, errlen);
}

static const char *outcome_of(int rc)
{
    switch (rc) {
    case 0:
        return MX_OUTCOME_OK;
    case MX_STORE_TIMEOUT:
        return MX_OUTCOME_TIMEOUT;
    case MX_RUN_BUSY:
        return MX_OUTCOME_BUSY;
    default:
        return MX_OUTCOME_UNAVAILABLE;
    }
}

/* Everything that selects an answer except the evaluation time. */
static void cache_key(const mx_view *v, const mx_params *p, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s|%u|%u|%u|%u|%s", v->name, p->window_hours, p->top, p->silent_minutes,
             p->limit, p->zone);
}

int mx_service_run(mx_service *s, const mx_view *v, const char *protocol, const mx_params *p,
                   uint8_t **buf, size_t *len, char *err, size_t errlen)
{
    int64_t t0 = pw_monotonic_us();
    char key[MX_ZONE_BYTES + 96]; /* the whole zone: answers for two zones never share a key */
    cache_key(v, p, key, sizeof(key));
    mx_compute ctx = {s, v, *p};
    int hit = 0;
    int rc = mx_cache_get(s->answers, key, compute_packed, &ctx, sizeof(ctx), buf, len, &hit, err,
                          errlen);
    double secs = (double)(pw_monotonic_us() - t0) / 1e6;
    const char *labels[] = {v->name, protocol};
    pw_prom_observe(s->latency, labels, secs);
    mx_service_count(s, v, protocol, outcome_of(rc));
    if (s->answers != NULL) {
        const char *cl[] = {v->name, hit ? "hit" : "miss"};
        pw_prom_add(s->cache, cl, 1);
    }
    if (rc == MX_RUN_BUSY) {
        pw_log(PW_LOG_DEBUG, "view_refused", "%s (%s): %s", v->name, protocol, err);
    } else if (rc != 0) {
        pw_log(PW_LOG_ERROR, "view_failed", "%s (%s): %s", v->name, protocol, err);
    } else if (pw_log_enabled(PW_LOG_DEBUG)) {
        pw_log(PW_LOG_DEBUG, "view_served", "%s (%s) in %.3f ms%s", v->name, protocol, secs * 1e3,
               hit ? " (cached)" : "");
    }
    return rc;
}
