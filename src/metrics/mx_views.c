/* mx_views: the views' store queries. Every query reads bucket documents
 * (rollup_readings and rollup_alerts: one per hour and Kafka partition, with
 * a cell per zone and type or zone, severity and code, and the devices that
 * became active per zone) or the devices collection, never raw readings, and
 * uses only find and counts, which MongoDB and FerretDB share. Cells are
 * summed and min/max merged here in C. */
#include "mx_views.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mx_calc.h"

#define MX_SPEC_UINT(n, lo, hi, d)                                                                 \
    {                                                                                              \
#n, MX_PARAM_UINT, lo, hi, d, offsetof(mx_params, n)                                       \
    }
#define MX_SPEC_ZONE                                                                               \
    {                                                                                              \
        "zone", MX_PARAM_ZONE, 0, 0, 0, offsetof(mx_params, zone)                                  \
    }

static const mx_param_spec temperature_params[] = {MX_SPEC_UINT(window_hours, 1, 720, 24),
                                                   MX_SPEC_ZONE};
static const mx_param_spec alerts_params[] = {MX_SPEC_UINT(window_hours, 1, 720, 168),
                                              MX_SPEC_UINT(top, 1, 100, 10), MX_SPEC_ZONE};
static const mx_param_spec zone_only_params[] = {MX_SPEC_ZONE};
static const mx_param_spec health_params[] = {MX_SPEC_UINT(silent_minutes, 1, 43200, 10),
                                              MX_SPEC_UINT(limit, 1, 1000, 100), MX_SPEC_ZONE};

#define MX_N(a) (sizeof(a) / sizeof((a)[0]))

const mx_view mx_views[] = {
    {"temperature", "/v1/metrics/temperature/zones", "/iot.v1.MetricsService/TemperatureByZone",
     &iot__v1__zone_temperature_request__descriptor,
     &iot__v1__zone_temperature_response__descriptor, temperature_params, MX_N(temperature_params),
     mx_view_temperature},
    {"alerts", "/v1/metrics/alerts/breakdown", "/iot.v1.MetricsService/AlertBreakdown",
     &iot__v1__alert_breakdown_request__descriptor, &iot__v1__alert_breakdown_response__descriptor,
     alerts_params, MX_N(alerts_params), mx_view_alerts},
    {"activity", "/v1/metrics/activity/trend", "/iot.v1.MetricsService/ActivityTrend",
     &iot__v1__activity_trend_request__descriptor, &iot__v1__activity_trend_response__descriptor,
     zone_only_params, MX_N(zone_only_params), mx_view_activity},
    {"firmware", "/v1/metrics/firmware/status", "/iot.v1.MetricsService/FirmwareStatus",
     &iot__v1__firmware_status_request__descriptor, &iot__v1__firmware_status_response__descriptor,
     zone_only_params, MX_N(zone_only_params), mx_view_firmware},
    {"health", "/v1/metrics/devices/health", "/iot.v1.MetricsService/DeviceHealth",
     &iot__v1__device_health_request__descriptor, &iot__v1__device_health_response__descriptor,
     health_params, MX_N(health_params), mx_view_health},
};
const size_t mx_view_count = MX_N(mx_views);

const mx_view *mx_view_by_path(const char *path)
{
    for (size_t i = 0; i < mx_view_count; i++) {
        if (strcmp(mx_views[i].path, path) == 0) {
            return &mx_views[i];
        }
    }
    return NULL;
}

/* A pooled client and one collection, released together. */
typedef struct {
    mx_store *store;
    mongoc_client_t *client;
    mongoc_collection_t *coll;
} mx_conn;

static void conn_open(mx_conn *c, mx_store *store, const char *coll)
{
    c->store = store;
    c->client = mx_store_pop(store);
    c->coll = mx_store_collection(store, c->client, coll);
}

static void conn_close(mx_conn *c)
{
    mongoc_collection_destroy(c->coll);
    mx_store_push(c->store, c->client);
}

static void append_zone(bson_t *filter, const mx_params *p)
{
    if (p->zone[0] != '\0') {
        BSON_APPEND_UTF8(filter, "zone", p->zone);
    }
}

/* Drains a cursor; 0 or -1 with the cursor's error in err. */
static int cursor_finish(mongoc_cursor_t *cur, char *err, size_t errlen)
{
    bson_error_t error;
    int rc = 0;
    if (mongoc_cursor_error(cur, &error)) {
        snprintf(err, errlen, "store query failed: %s", error.message);
        rc = -1;
    }
    mongoc_cursor_destroy(cur);
    return rc;
}

static void append_hour_range(bson_t *filter, int64_t from_ms, int64_t to_ms)
{
    bson_t range;
    BSON_APPEND_DOCUMENT_BEGIN(filter, "hour", &range);
    BSON_APPEND_DATE_TIME(&range, "$gte", from_ms);
    BSON_APPEND_DATE_TIME(&range, "$lt", to_ms);
    bson_append_document_end(filter, &range);
}

/* Rollup documents hold one cell per (zone, type) or (zone, severity, code)
 * for an hour and Kafka partition; a view walks the cells of the documents
 * its filter selects. fn returns 0, or -1 to stop (out of memory). */
typedef int (*mx_cell_fn)(void *ctx, const char *day, const bson_t *cell);

static int cells_of(const bson_t *doc, const char *array, mx_cell_fn fn, void *ctx)
{
    bson_iter_t it, arr;
    if (!bson_iter_init_find(&it, doc, array) || !BSON_ITER_HOLDS_ARRAY(&it) ||
        !bson_iter_recurse(&it, &arr)) {
        return 0;
    }
    const char *day = mx_bson_str(doc, "day", "");
    while (bson_iter_next(&arr)) {
        uint32_t len;
        const uint8_t *data;
        bson_t cell;
        if (!BSON_ITER_HOLDS_DOCUMENT(&arr)) {
            continue;
        }
        bson_iter_document(&arr, &len, &data);
        if (bson_init_static(&cell, data, len) && fn(ctx, day, &cell) != 0) {
            return -1;
        }
    }
    return 0;
}

/* What a pass over rollup documents calls: fn for every element of
 * "cells", and devices_fn (when set) for every element of "devices". */
typedef struct {
    mx_cell_fn fn, devices_fn;
    void *ctx;
} mx_cell_walk;

/* One pass over the documents of coll that filter selects. */
static int each_cell(mx_store *store, const char *coll, const bson_t *filter, const mx_cell_walk *w,
                     char *err, size_t errlen)
{
    bson_t *opts = BCON_NEW("projection", "{", "_id", BCON_INT32(0), "day", BCON_INT32(1), "cells",
                            BCON_INT32(1), "}");
    if (w->devices_fn) {
        bson_destroy(opts);
        opts = BCON_NEW("projection", "{", "_id", BCON_INT32(0), "day", BCON_INT32(1), "cells",
                        BCON_INT32(1), "devices", BCON_INT32(1), "}");
    }
    mx_conn c;
    conn_open(&c, store, coll);
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(c.coll, filter, opts, NULL);
    const bson_t *doc;
    int rc = 0;
    while (rc == 0 && mongoc_cursor_next(cur, &doc)) {
        rc = cells_of(doc, "cells", w->fn, w->ctx);
        if (rc == 0 && w->devices_fn) {
            rc = cells_of(doc, "devices", w->devices_fn, w->ctx);
        }
    }
    if (cursor_finish(cur, err, errlen) != 0) {
        rc = -1;
    } else if (rc != 0) {
        snprintf(err, errlen, "out of memory");
    }
    conn_close(&c);
    bson_destroy(opts);
    return rc;
}

/* The cells of the hourly documents in the window of p ([*from, *to)). */
static int window_cells(mx_store *store, const char *coll, const mx_params *p, int64_t *from,
                        int64_t *to, mx_cell_fn fn, void *ctx, char *err, size_t errlen)
{
    mx_window(p->now_ms, p->window_hours, from, to);
    bson_t filter = BSON_INITIALIZER;
    append_hour_range(&filter, *from, *to);
    mx_cell_walk w = {fn, NULL, ctx};
    int rc = each_cell(store, coll, &filter, &w, err, errlen);
    bson_destroy(&filter);
    return rc;
}

static int zone_matches(const mx_params *p, const bson_t *cell)
{
    return p->zone[0] == '\0' || strcmp(mx_bson_str(cell, "zone", ""), p->zone) == 0;
}

typedef struct {
    const mx_params *p;
    mx_table zones;
} temperature_ctx;

static int temperature_cell(void *vctx, const char *day, const bson_t *cell)
{
    (void)day;
    temperature_ctx *t = vctx;
    if (!zone_matches(t->p, cell) || strcmp(mx_bson_str(cell, "type", ""), "temperature") != 0) {
        return 0;
    }
    int has_range = mx_bson_has_number(cell, "min") && mx_bson_has_number(cell, "max");
    int64_t n = mx_bson_int(cell, "count", 0);
    return mx_table_add_bucket(&t->zones, mx_bson_str(cell, "zone", ""), n > 0 ? (uint64_t)n : 0,
                               mx_bson_double(cell, "sum", 0), mx_bson_double(cell, "min", 0),
                               mx_bson_double(cell, "max", 0), has_range);
}

int mx_view_temperature(mx_store *store, const mx_params *p, ProtobufCMessage **out, char *err,
                        size_t errlen)
{
    int64_t from, to;
    temperature_ctx t = {p, {0}};
    mx_table_init(&t.zones);
    int rc =
        window_cells(store, "rollup_readings", p, &from, &to, temperature_cell, &t, err, errlen);
    if (rc == 0) {
        *out = (ProtobufCMessage *)mx_build_temperature(&t.zones, from, to, p->window_hours);
        if (*out == NULL) {
            snprintf(err, errlen, "out of memory");
            rc = -1;
        }
    }
    mx_table_free(&t.zones);
    return rc;
}

typedef struct {
    const mx_params *p;
    mx_table severities, codes;
} alerts_ctx;

static int alerts_cell(void *vctx, const char *day, const bson_t *cell)
{
    (void)day;
    alerts_ctx *a = vctx;
    int64_t n = mx_bson_int(cell, "count", 0);
    if (!zone_matches(a->p, cell) || n <= 0) {
        return 0;
    }
    if (mx_table_add_count(&a->severities, mx_bson_str(cell, "severity", ""), (uint64_t)n, 0) !=
            0 ||
        mx_table_add_count(&a->codes, mx_bson_str(cell, "code", ""), (uint64_t)n, 0) != 0) {
        return -1;
    }
    return 0;
}

int mx_view_alerts(mx_store *store, const mx_params *p, ProtobufCMessage **out, char *err,
                   size_t errlen)
{
    int64_t from, to;
    alerts_ctx a = {p, {0}, {0}};
    mx_table_init(&a.severities);
    mx_table_init(&a.codes);
    int rc = window_cells(store, "rollup_alerts", p, &from, &to, alerts_cell, &a, err, errlen);
    if (rc == 0) {
        *out = (ProtobufCMessage *)mx_build_alerts(&a.severities, &a.codes, p->top, from, to,
                                                   p->window_hours);
        if (*out == NULL) {
            snprintf(err, errlen, "out of memory");
            rc = -1;
        }
    }
    mx_table_free(&a.severities);
    mx_table_free(&a.codes);
    return rc;
}

static void append_days(bson_t *filter, char days[MX_TREND_DAYS][PW_DAY_LEN])
{
    bson_t in, list;
    BSON_APPEND_DOCUMENT_BEGIN(filter, "day", &in);
    BSON_APPEND_ARRAY_BEGIN(&in, "$in", &list);
    for (int i = 0; i < MX_TREND_DAYS; i++) {
        char idx[4];
        snprintf(idx, sizeof(idx), "%d", i);
        BSON_APPEND_UTF8(&list, idx, days[i]);
    }
    bson_append_array_end(&in, &list);
    bson_append_document_end(filter, &in);
}

typedef struct {
    const mx_params *p;
    char (*days)[PW_DAY_LEN];
    uint64_t *totals, *devices;
} day_ctx;

static void day_add(const day_ctx *d, const char *day, const bson_t *cell, uint64_t *totals)
{
    int i = mx_trend_day_index(d->days, day);
    int64_t n = mx_bson_int(cell, "count", 0);
    if (i >= 0 && n > 0 && zone_matches(d->p, cell)) {
        totals[i] += (uint64_t)n;
    }
}

static int day_cell(void *vctx, const char *day, const bson_t *cell)
{
    day_ctx *d = vctx;
    day_add(d, day, cell, d->totals);
    return 0;
}

static int day_device(void *vctx, const char *day, const bson_t *cell)
{
    day_ctx *d = vctx;
    day_add(d, day, cell, d->devices);
    return 0;
}

/* Per-day totals over the last 7 days of a rollup collection, in one pass:
 * its records (cells) and the devices that became active (each device
 * counts once per day, in one document of one of the two collections). */
static int day_totals(mx_store *store, const char *coll, const mx_params *p,
                      char days[MX_TREND_DAYS][PW_DAY_LEN], uint64_t totals[MX_TREND_DAYS],
                      uint64_t devices[MX_TREND_DAYS], char *err, size_t errlen)
{
    bson_t filter = BSON_INITIALIZER;
    append_days(&filter, days);
    day_ctx d = {p, days, totals, devices};
    mx_cell_walk w = {day_cell, day_device, &d};
    int rc = each_cell(store, coll, &filter, &w, err, errlen);
    bson_destroy(&filter);
    return rc;
}

int mx_view_activity(mx_store *store, const mx_params *p, ProtobufCMessage **out, char *err,
                     size_t errlen)
{
    char days[MX_TREND_DAYS][PW_DAY_LEN];
    uint64_t readings[MX_TREND_DAYS] = {0}, alerts[MX_TREND_DAYS] = {0},
             devices[MX_TREND_DAYS] = {0};
    mx_trend_days(p->now_ms, days);
    if (day_totals(store, "rollup_readings", p, days, readings, devices, err, errlen) != 0 ||
        day_totals(store, "rollup_alerts", p, days, alerts, devices, err, errlen) != 0) {
        return -1;
    }
    *out = (ProtobufCMessage *)mx_build_trend(days, readings, alerts, devices);
    if (*out == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

int mx_view_firmware(mx_store *store, const mx_params *p, ProtobufCMessage **out, char *err,
                     size_t errlen)
{
    bson_t filter = BSON_INITIALIZER;
    append_zone(&filter, p);
    bson_t *opts = BCON_NEW("projection", "{", "_id", BCON_INT32(0), "firmware", BCON_INT32(1),
                            "last_seen", BCON_INT32(1), "}");
    mx_conn c;
    conn_open(&c, store, "devices");
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(c.coll, &filter, opts, NULL);
    mx_table fw;
    mx_table_init(&fw);
    const bson_t *doc;
    int rc = 0;
    while (rc == 0 && mongoc_cursor_next(cur, &doc)) {
        rc = mx_table_add_count(&fw, mx_bson_str(doc, "firmware", ""), 1,
                                mx_bson_time_ms(doc, "last_seen", 0));
    }
    if (cursor_finish(cur, err, errlen) != 0) {
        rc = -1;
    } else if (rc != 0) {
        snprintf(err, errlen, "out of memory");
    }
    conn_close(&c);
    bson_destroy(opts);
    bson_destroy(&filter);
    if (rc == 0) {
        *out = (ProtobufCMessage *)mx_build_firmware(&fw);
        if (*out == NULL) {
            snprintf(err, errlen, "out of memory");
            rc = -1;
        }
    }
    mx_table_free(&fw);
    return rc;
}

static int count_devices(mongoc_collection_t *coll, const bson_t *filter, uint64_t *out, char *err,
                         size_t errlen)
{
    bson_error_t error;
    int64_t n = mongoc_collection_count_documents(coll, filter, NULL, NULL, NULL, &error);
    if (n < 0) {
        snprintf(err, errlen, "store count failed: %s", error.message);
        return -1;
    }
    *out = (uint64_t)n;
    return 0;
}

static int list_silent(mongoc_collection_t *coll, const bson_t *filter, const mx_params *p,
                       Iot__V1__DeviceHealthResponse *r, char *err, size_t errlen)
{
    bson_t *opts = BCON_NEW("projection", "{", "zone", BCON_INT32(1), "last_seen", BCON_INT32(1),
                            "}", "sort", "{", "last_seen", BCON_INT32(1), "_id", BCON_INT32(1), "}",
                            "limit", BCON_INT64(p->limit));
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, filter, opts, NULL);
    r->silent = calloc(p->limit, sizeof(*r->silent));
    int rc = r->silent ? 0 : -1;
    const bson_t *doc;
    while (rc == 0 && r->n_silent < p->limit && mongoc_cursor_next(cur, &doc)) {
        Iot__V1__SilentDevice *d = malloc(sizeof(*d));
        if (d == NULL) {
            rc = -1;
            break;
        }
        iot__v1__silent_device__init(d);
        r->silent[r->n_silent++] = d;
        bson_iter_t it;
        char idbuf[32];
        const char *id = "";
        if (bson_iter_init_find(&it, doc, "_id")) {
            if (BSON_ITER_HOLDS_UTF8(&it)) {
                id = bson_iter_utf8(&it, NULL);
            } else if (BSON_ITER_HOLDS_OID(&it)) {
                bson_oid_to_string(bson_iter_oid(&it), idbuf);
                id = idbuf;
            }
        }
        d->device_id = strdup(id);
        d->zone = strdup(mx_bson_str(doc, "zone", ""));
        if (d->device_id == NULL || d->zone == NULL) {
            rc = -1;
        }
        d->last_seen_ms = mx_bson_time_ms(doc, "last_seen", 0);
        d->silent_seconds = (r->as_of_ms - d->last_seen_ms) / 1000;
    }
    if (rc != 0) {
        snprintf(err, errlen, "out of memory");
    }
    if (cursor_finish(cur, err, errlen) != 0) {
        rc = -1;
    }
    bson_destroy(opts);
    return rc;
}

int mx_view_health(mx_store *store, const mx_params *p, ProtobufCMessage **out, char *err,
                   size_t errlen)
{
    Iot__V1__DeviceHealthResponse *r = malloc(sizeof(*r));
    if (r == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    iot__v1__device_health_response__init(r);
    r->as_of_ms = p->now_ms;
    r->threshold_ms = p->now_ms - (int64_t)p->silent_minutes * 60000;

    bson_t all = BSON_INITIALIZER, silent = BSON_INITIALIZER, lt;
    append_zone(&all, p);
    append_zone(&silent, p);
    BSON_APPEND_DOCUMENT_BEGIN(&silent, "last_seen", &lt);
    BSON_APPEND_DATE_TIME(&lt, "$lt", r->threshold_ms);
    bson_append_document_end(&silent, &lt);

    mx_conn c;
    conn_open(&c, store, "devices");
    int rc = count_devices(c.coll, &all, &r->total_devices, err, errlen);
    if (rc == 0) {
        rc = count_devices(c.coll, &silent, &r->silent_devices, err, errlen);
    }
    if (rc == 0) {
        rc = list_silent(c.coll, &silent, p, r, err, errlen);
    }
    conn_close(&c);
    bson_destroy(&all);
    bson_destroy(&silent);
    if (rc != 0) {
        protobuf_c_message_free_unpacked(&r->base, NULL);
        return -1;
    }
    *out = &r->base;
    return 0;
}
