/* mx_history_api: REST and gRPC front of the history queries (see
 * mx_history_api.h). */
#include "mx_history_api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mx_json.h"
#include "pw_http.h"
#include "pw_log.h"
#include "pw_time.h"

/* Names, descriptors and labels, in mx_hist_kind order (params/run unused:
 * the history queries validate into mx_hist_query). */
static const mx_view mx_hist_views[MX_HIST_KINDS] = {
    {"device_readings", "/v1/devices/{device_id}/readings", "/iot.v1.MetricsService/DeviceReadings",
     &iot__v1__device_readings_request__descriptor, &iot__v1__device_readings_response__descriptor,
     NULL, 0, NULL},
    {"zone_readings", "/v1/zones/{zone}/readings", "/iot.v1.MetricsService/ZoneReadings",
     &iot__v1__zone_readings_request__descriptor, &iot__v1__zone_readings_response__descriptor,
     NULL, 0, NULL},
    {"device_alerts", "/v1/devices/{device_id}/alerts", "/iot.v1.MetricsService/DeviceAlerts",
     &iot__v1__device_alerts_request__descriptor, &iot__v1__device_alerts_response__descriptor,
     NULL, 0, NULL},
    {"zone_alerts", "/v1/zones/{zone}/alerts", "/iot.v1.MetricsService/ZoneAlerts",
     &iot__v1__zone_alerts_request__descriptor, &iot__v1__zone_alerts_response__descriptor, NULL, 0,
     NULL},
};

/* ---- REST routing and arguments ---------------------------------------- */

static int ends_with(const char *s, size_t len, const char *suffix)
{
    size_t n = strlen(suffix);
    return len >= n && memcmp(s + len - n, suffix, n) == 0;
}

int mx_history_route(const char *url, mx_hist_kind *kind, const char **key, size_t *keylen)
{
    static const char devices[] = "/v1/devices/", zones[] = "/v1/zones/";
    int device;
    const char *rest;
    if (strncmp(url, devices, sizeof(devices) - 1) == 0) {
        device = 1;
        rest = url + sizeof(devices) - 1;
    } else if (strncmp(url, zones, sizeof(zones) - 1) == 0) {
        device = 0;
        rest = url + sizeof(zones) - 1;
    } else {
        return 0;
    }
    size_t len = strlen(rest);
    int readings;
    if (ends_with(rest, len, "/readings")) {
        readings = 1;
        len -= strlen("/readings");
    } else if (ends_with(rest, len, "/alerts")) {
        readings = 0;
        len -= strlen("/alerts");
    } else {
        return 0;
    }
    if (len == 0) {
        return 0;
    }
    if (readings) {
        *kind = device ? MX_HIST_DEVICE_READINGS : MX_HIST_ZONE_READINGS;
    } else {
        *kind = device ? MX_HIST_DEVICE_ALERTS : MX_HIST_ZONE_ALERTS;
    }
    *key = rest;
    *keylen = len;
    return 1;
}

static const char *const mx_readings_args[] = {"type", "from", "to", "step", "limit", "cursor"};
static const char *const mx_alerts_args[] = {"from", "to", "limit", "cursor"};

static int is_printable(const char *s, size_t max)
{
    size_t n = strlen(s);
    for (size_t i = 0; i < n; i++) {
        if (s[i] < 0x20 || s[i] > 0x7e) {
            return 0;
        }
    }
    return n <= max;
}

/* limit text: 1..10 decimal digits, saturated (the range check follows). */
static int parse_limit(const char *v, uint32_t *out)
{
    size_t len = strlen(v);
    if (len == 0 || len > 10 || strspn(v, "0123456789") != len) {
        return -1;
    }
    uint64_t x = strtoull(v, NULL, 10);
    *out = x > UINT32_MAX ? UINT32_MAX : (uint32_t)x;
    return 0;
}

void mx_history_arg(mx_hist_kind kind, mx_hist_args *a, unsigned *seen, const char *name,
                    const char *value, mx_param_error *e)
{
    int readings = kind == MX_HIST_DEVICE_READINGS || kind == MX_HIST_ZONE_READINGS;
    const char *const *names = readings ? mx_readings_args : mx_alerts_args;
    size_t n = readings ? 6 : 4;
    size_t i = 0;
    while (i < n && strcmp(names[i], name) != 0) {
        i++;
    }
    if (i == n) {
        char reason[160] = "unknown parameter (allowed: ";
        for (size_t j = 0; j < n; j++) {
            strcat(reason, names[j]);
            strcat(reason, j + 1 < n ? ", " : ")");
        }
        mx_param_error_add(e, is_printable(name, 32) ? name : "(unprintable or long name)", NULL,
                           reason);
        return;
    }
    if (*seen & (1u << i)) {
        mx_param_error_add(e, name, NULL, "given more than once");
        return;
    }
    *seen |= 1u << i;
    if (value == NULL) {
        mx_param_error_add(e, name, NULL, "requires a value");
        return;
    }
    if (strcmp(name, "limit") == 0) {
        char reason[80];
        snprintf(reason, sizeof(reason), "must be an integer between 1 and %d",
                 readings ? MX_HIST_RAW_LIMIT_MAX : MX_HIST_ALERT_LIMIT_MAX);
        if (parse_limit(value, &a->limit) != 0) {
            mx_param_error_add(e, name, is_printable(value, 24) ? value : NULL, reason);
            return;
        }
        a->limit_set = 1;
        return;
    }
    const char **slot = strcmp(name, "type") == 0   ? &a->type
                        : strcmp(name, "from") == 0 ? &a->from
                        : strcmp(name, "to") == 0   ? &a->to
                        : strcmp(name, "step") == 0 ? &a->step
                                                    : &a->cursor;
    *slot = value;
}

/* ---- running a query ---------------------------------------------------- */

/* Self-contained (the cache may copy it for a background refresh). */
typedef struct {
    mx_service *svc;
    mx_hist_query q;
} mx_hist_compute;

static int compute_packed(void *ctx, int background, uint8_t **buf, size_t *len, char *err,
                          size_t errlen)
{
    mx_hist_compute *c = ctx;
    mx_service *s = c->svc;
    if (mx_gate_enter(s->gate, background ? 0 : s->queue_wait_ms) != 0) {
        snprintf(err, errlen, "busy: all %u store computations are in use, retry shortly",
                 mx_gate_slots(s->gate));
        return MX_RUN_BUSY;
    }
    ProtobufCMessage *msg = NULL;
    c->q.deadline_us = mx_store_deadline(s->store);
    int rc = mx_history_run(s->store, &c->q, &msg, err, errlen);
    mx_gate_leave(s->gate);
    if (rc != 0) {
        return rc < 0 ? rc : MX_STORE_FAILED;
    }
    *len = protobuf_c_message_get_packed_size(msg);
    *buf = malloc(*len ? *len : 1);
    if (*buf != NULL) {
        protobuf_c_message_pack(msg, *buf);
    }
    protobuf_c_message_free_unpacked(msg, NULL);
    if (*buf == NULL) {
        snprintf(err, errlen, "out of memory");
        return MX_STORE_FAILED;
    }
    return 0;
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

/* Answers q (bucketed readings through the cache), timed and counted. */
static int serve_query(mx_service *s, const mx_hist_query *q, const char *protocol, uint8_t **buf,
                       size_t *len, char *err, size_t errlen)
{
    const mx_view *v = &mx_hist_views[q->kind];
    int64_t t0 = pw_monotonic_us();
    mx_hist_compute ctx = {s, *q};
    int hit = 0, cached = q->step_ms > 0 && s->answers != NULL;
    int rc;
    if (cached) {
        char key[MX_HIST_KEY_BYTES + PW_MAX_TYPE_BYTES + 96];
        snprintf(key, sizeof(key), "%s|%lld|%lld|%lld|%s|%s", v->name, (long long)q->from_ms,
                 (long long)q->to_ms, (long long)q->step_ms, q->type, q->key);
        rc = mx_cache_get(s->answers, key, compute_packed, &ctx, sizeof(ctx), buf, len, &hit, err,
                          errlen);
        const char *cl[] = {v->name, hit ? "hit" : "miss"};
        pw_prom_add(s->cache, cl, 1);
    } else {
        rc = compute_packed(&ctx, 0, buf, len, err, errlen);
    }
    double secs = (double)(pw_monotonic_us() - t0) / 1e6;
    const char *labels[] = {v->name, protocol};
    pw_prom_observe(s->latency, labels, secs);
    mx_service_count(s, v, protocol, outcome_of(rc));
    if (rc == MX_RUN_BUSY) {
        pw_log(PW_LOG_DEBUG, "view_refused", "%s (%s): %s", v->name, protocol, err);
    } else if (rc != 0) {
        pw_log(PW_LOG_ERROR, "view_failed", "%s (%s): %s", v->name, protocol, err);
    }
    return rc;
}

/* ---- REST ---------------------------------------------------------------- */

typedef struct {
    mx_hist_kind kind;
    mx_hist_args *args;
    unsigned seen;
    mx_param_error *err;
} mx_hist_collect;

static enum MHD_Result collect_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    (void)kind;
    mx_hist_collect *c = cls;
    mx_history_arg(c->kind, c->args, &c->seen, key, value, c->err);
    return MHD_YES;
}

static enum MHD_Result send_invalid(mx_service *s, struct MHD_Connection *c, mx_hist_kind kind,
                                    mx_param_error *perr)
{
    char msg[600];
    snprintf(msg, sizeof(msg), "invalid parameter: %s", perr->message);
    json_t *details = json_incref(perr->details);
    mx_service_count(s, &mx_hist_views[kind], "rest", MX_OUTCOME_INVALID);
    return pw_http_send_error(c, MHD_HTTP_BAD_REQUEST, "invalid_parameter", msg, details);
}

static enum MHD_Result send_answer(struct MHD_Connection *c, mx_hist_kind kind, uint8_t *buf,
                                   size_t len)
{
    ProtobufCMessage *resp =
        protobuf_c_message_unpack(mx_hist_views[kind].response, NULL, len, buf);
    json_t *body = resp ? mx_json_from_message(resp) : NULL;
    protobuf_c_message_free_unpacked(resp, NULL);
    if (body == NULL) {
        return pw_http_send_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", "out of memory",
                                  NULL);
    }
    return pw_http_send_json(c, MHD_HTTP_OK, body);
}

int mx_history_rest(mx_service *s, struct MHD_Connection *c, const char *url,
                    enum MHD_Result *result)
{
    mx_hist_kind kind;
    const char *seg;
    size_t seglen;
    if (!mx_history_route(url, &kind, &seg, &seglen)) {
        return 0;
    }
    char *key = strndup(seg, seglen);
    if (key == NULL) {
        *result = MHD_NO;
        return 1;
    }
    mx_hist_args args;
    memset(&args, 0, sizeof(args));
    args.key = key;
    mx_param_error perr;
    mx_param_error_init(&perr);
    mx_hist_collect col = {kind, &args, 0, &perr};
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, collect_arg, &col);
    mx_hist_query q;
    if (perr.count == 0) {
        mx_hist_resolve(kind, &args, pw_now_ms(), &q, &perr);
    }
    free(key);
    if (perr.count > 0) {
        *result = send_invalid(s, c, kind, &perr);
        mx_param_error_free(&perr);
        return 1;
    }
    mx_param_error_free(&perr);
    uint8_t *buf = NULL;
    size_t len = 0;
    char err[256];
    int rc = serve_query(s, &q, "rest", &buf, &len, err, sizeof(err));
    if (rc != 0) {
        *result = pw_http_send_unavailable(c, rc == MX_RUN_BUSY ? 1 : 5, err);
        return 1;
    }
    *result = send_answer(c, kind, buf, len);
    free(buf);
    return 1;
}

/* ---- gRPC ---------------------------------------------------------------- */

/* The arguments of a decoded request of kind (strings borrowed from req). */
static void args_from_message(mx_hist_kind kind, const ProtobufCMessage *req, mx_hist_args *a)
{
    memset(a, 0, sizeof(*a));
    switch (kind) {
    case MX_HIST_DEVICE_READINGS: {
        const Iot__V1__DeviceReadingsRequest *r = (const void *)req;
        *a = (mx_hist_args){r->device_id, r->type,   r->from,       r->to,
                            r->step,      r->cursor, r->limit != 0, r->limit};
        break;
    }
    case MX_HIST_ZONE_READINGS: {
        const Iot__V1__ZoneReadingsRequest *r = (const void *)req;
        *a = (mx_hist_args){r->zone, r->type,   r->from,       r->to,
                            r->step, r->cursor, r->limit != 0, r->limit};
        break;
    }
    case MX_HIST_DEVICE_ALERTS: {
        const Iot__V1__DeviceAlertsRequest *r = (const void *)req;
        *a = (mx_hist_args){r->device_id, NULL,      r->from,       r->to,
                            NULL,         r->cursor, r->limit != 0, r->limit};
        break;
    }
    case MX_HIST_ZONE_ALERTS: {
        const Iot__V1__ZoneAlertsRequest *r = (const void *)req;
        *a =
            (mx_hist_args){r->zone, NULL, r->from, r->to, NULL, r->cursor, r->limit != 0, r->limit};
        break;
    }
    }
}

static void finish_invalid(pw_grpc_call *call, mx_service *s, mx_hist_kind kind, const char *msg)
{
    mx_service_count(s, &mx_hist_views[kind], "grpc", MX_OUTCOME_INVALID);
    pw_grpc_call_finish(call, NULL, 0, GRPC_STATUS_INVALID_ARGUMENT, msg);
}

static void handle_history(pw_grpc_call *call, void *ctx)
{
    mx_method *m = ctx;
    mx_hist_kind kind = (mx_hist_kind)(m->view - mx_hist_views);
    uint8_t *buf = NULL;
    size_t len = 0;
    int got = pw_grpc_call_recv(call, &buf, &len);
    if (got != 1) {
        pw_grpc_call_finish(call, NULL, 0,
                            got == 0 ? GRPC_STATUS_INVALID_ARGUMENT : GRPC_STATUS_CANCELLED,
                            got == 0 ? "missing request message" : "call cancelled");
        return;
    }
    ProtobufCMessage *req = protobuf_c_message_unpack(m->view->request, NULL, len, buf);
    free(buf);
    if (req == NULL) {
        finish_invalid(call, m->svc, kind, "malformed request message");
        return;
    }
    mx_hist_args args;
    args_from_message(kind, req, &args);
    mx_param_error perr;
    mx_param_error_init(&perr);
    mx_hist_query q;
    int rc = mx_hist_resolve(kind, &args, pw_now_ms(), &q, &perr);
    protobuf_c_message_free_unpacked(req, NULL);
    if (rc != 0) {
        char msg[600];
        snprintf(msg, sizeof(msg), "invalid parameter: %s", perr.message);
        mx_param_error_free(&perr);
        finish_invalid(call, m->svc, kind, msg);
        return;
    }
    mx_param_error_free(&perr);
    uint8_t *out = NULL;
    size_t n = 0;
    char err[256];
    rc = serve_query(m->svc, &q, "grpc", &out, &n, err, sizeof(err));
    if (rc != 0) {
        pw_grpc_call_finish(
            call, NULL, 0,
            rc == MX_RUN_BUSY ? GRPC_STATUS_RESOURCE_EXHAUSTED : GRPC_STATUS_UNAVAILABLE, err);
        return;
    }
    pw_grpc_call_finish(call, out, n, GRPC_STATUS_OK, NULL);
    free(out);
}

int mx_history_grpc_register(mx_service *s, pw_grpc_server *server)
{
    for (size_t i = 0; i < MX_HIST_KINDS; i++) {
        s->history_methods[i].svc = s;
        s->history_methods[i].view = &mx_hist_views[i];
        if (pw_grpc_server_add_method(server, mx_hist_views[i].rpc_path, handle_history,
                                      &s->history_methods[i]) != 0) {
            return -1;
        }
    }
    return 0;
}
