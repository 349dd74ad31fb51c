/* mx_views: the views' store queries. Every query reads pre-aggregated
 * documents with pushed-down equality filters (FerretDB) or indexes
 * (MongoDB): rollup buckets (rollup_readings, rollup_alerts: per Kafka
 * partition, one per UTC hour and one per UTC day, their cells packed in
 * "state") — the hour buckets of the days a window covers in part
 * ({day, res: "hour"}) and the day buckets of the days it covers whole
 * ({day, res: "day"}, or {month} for long windows) — or the device census
 * (whole, merged per device in mx_fleet). Cells are summed and min/max
 * merged here in C. */
#include "mx_views.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iot/v1/storage.pb-c.h"
#include "mx_calc.h"
#include "mx_fleet.h"
#include "pw_schema.h"

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

/* What a pass over rollup documents calls per cell and per active-devices
 * zone count; fn returns 0, or -1 to stop (out of memory). */
typedef int (*mx_cell_fn)(void *ctx, const char *day, const Iot__V1__RollupCell *cell);
typedef int (*mx_zone_fn)(void *ctx, const char *day, const Iot__V1__ZoneCount *devices);

typedef struct {
    mx_cell_fn cell;
    mx_zone_fn devices; /* may be NULL */
    void *ctx;
    int64_t deadline_us; /* of the computation's store queries (mx_store_deadline) */
} mx_walk;

/* Which documents of a query a walk keeps: hour buckets with hour in
 * [from, to), or day buckets whose day is one of days (NULL: all). */
typedef struct {
    int64_t from_ms, to_ms;
    const mx_day_span *days;
    size_t ndays;
} mx_keep;

static int keep_doc(const mx_keep *k, const bson_t *doc)
{
    if (k->days == NULL) {
        int64_t hour = mx_bson_time_ms(doc, PW_F_HOUR, -1);
        return hour >= k->from_ms && hour < k->to_ms;
    }
    const char *day = mx_bson_str(doc, PW_F_DAY, "");
    for (size_t i = 0; i < k->ndays; i++) {
        if (k->days[i].full && strcmp(k->days[i].day, day) == 0) {
            return 1;
        }
    }
    return 0;
}

static int walk_state(const bson_t *doc, const mx_walk *w, char *err, size_t errlen)
{
    int bad = 0;
    Iot__V1__RollupState *st = (Iot__V1__RollupState *)pw_store_unpack(
        doc, PW_F_STATE, &iot__v1__rollup_state__descriptor, &bad);
    if (bad) {
        snprintf(err, errlen, "a rollup document does not decode");
        return -1;
    }
    if (st == NULL) {
        return 0;
    }
    const char *day = mx_bson_str(doc, PW_F_DAY, "");
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < st->n_cells; i++) {
        rc = w->cell(w->ctx, day, st->cells[i]);
    }
    for (size_t i = 0; rc == 0 && w->devices && i < st->n_devices; i++) {
        rc = w->devices(w->ctx, day, st->devices[i]);
    }
    if (rc != 0) {
        snprintf(err, errlen, "out of memory");
    }
    protobuf_c_message_free_unpacked(&st->base, NULL);
    return rc;
}

/* One query on coll: the kept documents' states walked. 0, or a negative
 * MX_STORE_* (or -1 when a document does not decode) with err. */
static int walk_query(mx_store *store, const char *coll_name, const bson_t *filter,
                      const mx_keep *keep, const mx_walk *w, char *err, size_t errlen)
{
    bson_t *opts = BCON_NEW("projection", "{", PW_F_ID, BCON_INT32(0), PW_F_DAY, BCON_INT32(1),
                            PW_F_HOUR, BCON_INT32(1), PW_F_STATE, BCON_INT32(1), "}");
    int rc = mx_store_limit(store, opts, w->deadline_us, err, errlen);
    if (rc != 0) {
        bson_destroy(opts);
        return rc;
    }
    mongoc_client_t *client = mx_store_pop(store);
    mongoc_collection_t *coll = mx_store_collection(store, client, coll_name);
    mx_store_check(store, coll, filter, "rollup buckets", 0);
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, filter, opts, NULL);
    const bson_t *doc;
    while (rc == 0 && mongoc_cursor_next(cur, &doc)) {
        if (keep_doc(keep, doc)) {
            rc = walk_state(doc, w, err, errlen);
        }
    }
    bson_error_t error;
    if (mongoc_cursor_error(cur, &error)) {
        rc = mx_store_failure(store, &error, w->deadline_us, err, errlen);
    }
    mongoc_cursor_destroy(cur);
    mongoc_collection_destroy(coll);
    mx_store_push(store, client);
    bson_destroy(opts);
    return rc;
}

static int walk_day(mx_store *store, const char *coll, const mx_day_span *d, const char *res,
                    const mx_keep *keep, const mx_walk *w, char *err, size_t errlen)
{
    bson_t filter = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&filter, PW_F_DAY, d->day);
    BSON_APPEND_UTF8(&filter, PW_F_RES, res);
    int rc = walk_query(store, coll, &filter, keep, w, err, errlen);
    bson_destroy(&filter);
    return rc;
}

/* Day buckets of the full days of days[]: one query per day for up to a
 * week, else one per month (filtered here). */
#define MX_DAY_QUERIES_MAX 7

static int walk_full_days(mx_store *store, const char *coll, const mx_day_span *days, size_t n,
                          const mx_walk *w, char *err, size_t errlen)
{
    mx_keep keep = {0, 0, days, n};
    size_t nfull = 0;
    for (size_t i = 0; i < n; i++) {
        nfull += days[i].full ? 1 : 0;
    }
    int rc = 0;
    char month[8] = "", prev[8] = "";
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (!days[i].full) {
            continue;
        }
        if (nfull <= MX_DAY_QUERIES_MAX) {
            rc = walk_day(store, coll, &days[i], PW_RES_DAY, &keep, w, err, errlen);
            continue;
        }
        snprintf(month, sizeof(month), "%.7s", days[i].day);
        if (strcmp(month, prev) == 0) {
            continue;
        }
        memcpy(prev, month, sizeof(prev));
        bson_t filter = BSON_INITIALIZER;
        BSON_APPEND_UTF8(&filter, PW_F_MONTH, month);
        rc = walk_query(store, coll, &filter, &keep, w, err, errlen);
        bson_destroy(&filter);
    }
    return rc;
}

/* The cells of the window [from, to): hour buckets of the days it covers in
 * part, day buckets of the days it covers whole. */
static int walk_window(mx_store *store, const char *coll, int64_t from, int64_t to,
                       const mx_walk *w, char *err, size_t errlen)
{
    mx_day_span days[MX_WINDOW_DAYS_MAX];
    size_t n = mx_window_days(from, to, days, MX_WINDOW_DAYS_MAX);
    mx_keep hours = {from, to, NULL, 0};
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (!days[i].full) {
            rc = walk_day(store, coll, &days[i], PW_RES_HOUR, &hours, w, err, errlen);
        }
    }
    return rc == 0 ? walk_full_days(store, coll, days, n, w, err, errlen) : rc;
}

/* A bucket's overflow cell (the consumer's bound, see docs/architecture.md
 * "Bounded documents") has an empty zone, which no accepted record has, and
 * an empty type or severity when even that did not fit: shown as MX_OTHER. */
#define MX_OTHER "(other)"

static const char *mx_shown(const char *name)
{
    return name[0] ? name : MX_OTHER;
}

static int zone_matches(const mx_params *p, const char *zone)
{
    return p->zone[0] == '\0' || strcmp(zone, p->zone) == 0;
}

typedef struct {
    const mx_params *p;
    mx_table zones;
} temperature_ctx;

static int temperature_cell(void *vctx, const char *day, const Iot__V1__RollupCell *c)
{
    (void)day;
    temperature_ctx *t = vctx;
    if (!zone_matches(t->p, c->zone) || strcmp(c->label, "temperature") != 0 || c->count <= 0) {
        return 0;
    }
    return mx_table_add_bucket(&t->zones, mx_shown(c->zone), (uint64_t)c->count, c->sum, c->min,
                               c->max, 1);
}

int mx_view_temperature(mx_store *store, const mx_params *p, ProtobufCMessage **out, char *err,
                        size_t errlen)
{
    int64_t from, to;
    mx_window(p->now_ms, p->window_hours, &from, &to);
    temperature_ctx t = {p, {0}};
    mx_table_init(&t.zones);
    mx_walk w = {temperature_cell, NULL, &t, p->deadline_us};
    int rc = walk_window(store, PW_COLL_ROLLUP_READINGS, from, to, &w, err, errlen);
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

static int alerts_cell(void *vctx, const char *day, const Iot__V1__RollupCell *c)
{
    (void)day;
    alerts_ctx *a = vctx;
    if (!zone_matches(a->p, c->zone) || c->count <= 0) {
        return 0;
    }
    const char *code = c->zone[0] ? c->code : MX_OTHER;
    if (mx_table_add_count(&a->severities, mx_shown(c->label), (uint64_t)c->count, 0) != 0 ||
        mx_table_add_count(&a->codes, code, (uint64_t)c->count, 0) != 0) {
        return -1;
    }
    return 0;
}

int mx_view_alerts(mx_store *store, const mx_params *p, ProtobufCMessage **out, char *err,
                   size_t errlen)
{
    int64_t from, to;
    mx_window(p->now_ms, p->window_hours, &from, &to);
    alerts_ctx a = {p, {0}, {0}};
    mx_table_init(&a.severities);
    mx_table_init(&a.codes);
    mx_walk w = {alerts_cell, NULL, &a, p->deadline_us};
    int rc = walk_window(store, PW_COLL_ROLLUP_ALERTS, from, to, &w, err, errlen);
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

typedef struct {
    const mx_params *p;
    char (*days)[PW_DAY_LEN];
    uint64_t *totals, *devices;
} day_ctx;

static int day_cell(void *vctx, const char *day, const Iot__V1__RollupCell *c)
{
    day_ctx *d = vctx;
    int i = mx_trend_day_index(d->days, day);
    if (i >= 0 && c->count > 0 && zone_matches(d->p, c->zone)) {
        d->totals[i] += (uint64_t)c->count;
    }
    return 0;
}

static int day_devices(void *vctx, const char *day, const Iot__V1__ZoneCount *z)
{
    day_ctx *d = vctx;
    int i = mx_trend_day_index(d->days, day);
    if (i >= 0 && z->count > 0 && zone_matches(d->p, z->zone)) {
        d->devices[i] += (uint64_t)z->count;
    }
    return 0;
}

/* Per-day totals of the trend's days from the day buckets of coll: its
 * records (cells) and the devices that became active (each device counts
 * once per day, in one bucket of one of the two collections). */
static int day_totals(mx_store *store, const char *coll, const mx_params *p,
                      char days[MX_TREND_DAYS][PW_DAY_LEN], uint64_t totals[MX_TREND_DAYS],
                      uint64_t devices[MX_TREND_DAYS], char *err, size_t errlen)
{
    mx_day_span spans[MX_TREND_DAYS];
    for (int i = 0; i < MX_TREND_DAYS; i++) {
        memcpy(spans[i].day, days[i], PW_DAY_LEN);
        spans[i].start_ms = 0;
        spans[i].full = 1;
    }
    day_ctx d = {p, days, totals, devices};
    mx_walk w = {day_cell, day_devices, &d, p->deadline_us};
    return walk_full_days(store, coll, spans, MX_TREND_DAYS, &w, err, errlen);
}

int mx_view_activity(mx_store *store, const mx_params *p, ProtobufCMessage **out, char *err,
                     size_t errlen)
{
    char days[MX_TREND_DAYS][PW_DAY_LEN];
    uint64_t readings[MX_TREND_DAYS] = {0}, alerts[MX_TREND_DAYS] = {0},
             devices[MX_TREND_DAYS] = {0};
    mx_trend_days(p->now_ms, days);
    int rc = day_totals(store, PW_COLL_ROLLUP_READINGS, p, days, readings, devices, err, errlen);
    if (rc == 0) {
        rc = day_totals(store, PW_COLL_ROLLUP_ALERTS, p, days, alerts, devices, err, errlen);
    }
    if (rc != 0) {
        return rc;
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
    mx_fleet f;
    mx_fleet_init(&f);
    mx_table fw;
    mx_table_init(&fw);
    int rc = mx_fleet_load(store, &f, p->deadline_us, err, errlen);
    for (size_t i = 0; rc == 0 && i < f.n; i++) {
        if (zone_matches(p, f.v[i].zone) &&
            mx_table_add_count(&fw, f.v[i].firmware, 1, f.v[i].last_ms) != 0) {
            snprintf(err, errlen, "out of memory");
            rc = -1;
        }
    }
    if (rc == 0) {
        *out = (ProtobufCMessage *)mx_build_firmware(&fw);
        if (*out == NULL) {
            snprintf(err, errlen, "out of memory");
            rc = -1;
        }
    }
    mx_table_free(&fw);
    mx_fleet_free(&f);
    return rc;
}

static int cmp_silent(const void *a, const void *b)
{
    const mx_device *x = *(const mx_device *const *)a, *y = *(const mx_device *const *)b;
    if (x->last_ms != y->last_ms) {
        return x->last_ms < y->last_ms ? -1 : 1;
    }
    return strcmp(x->device, y->device);
}

static int fill_silent(Iot__V1__DeviceHealthResponse *r, const mx_device *const *silent, size_t n,
                       uint32_t limit)
{
    size_t m = n < limit ? n : limit;
    r->silent = calloc(m ? m : 1, sizeof(*r->silent));
    if (r->silent == NULL) {
        return -1;
    }
    for (size_t i = 0; i < m; i++) {
        Iot__V1__SilentDevice *d = malloc(sizeof(*d));
        if (d == NULL) {
            return -1;
        }
        iot__v1__silent_device__init(d);
        r->silent[r->n_silent++] = d;
        d->device_id = strdup(silent[i]->device);
        d->zone = strdup(silent[i]->zone);
        if (d->device_id == NULL || d->zone == NULL) {
            return -1;
        }
        d->last_seen_ms = silent[i]->last_ms;
        d->silent_seconds = (r->as_of_ms - d->last_seen_ms) / 1000;
    }
    return 0;
}

static int health_of(const mx_fleet *f, const mx_params *p, Iot__V1__DeviceHealthResponse *r)
{
    const mx_device **silent = malloc((f->n ? f->n : 1) * sizeof(*silent));
    if (silent == NULL) {
        return -1;
    }
    size_t ns = 0;
    for (size_t i = 0; i < f->n; i++) {
        if (!zone_matches(p, f->v[i].zone)) {
            continue;
        }
        r->total_devices++;
        if (f->v[i].last_ms < r->threshold_ms) {
            silent[ns++] = &f->v[i];
        }
    }
    r->silent_devices = ns;
    qsort(silent, ns, sizeof(*silent), cmp_silent);
    int rc = fill_silent(r, silent, ns, p->limit);
    free(silent);
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
    mx_fleet f;
    mx_fleet_init(&f);
    int rc = mx_fleet_load(store, &f, p->deadline_us, err, errlen);
    if (rc == 0 && health_of(&f, p, r) != 0) {
        snprintf(err, errlen, "out of memory");
        rc = -1;
    }
    mx_fleet_free(&f);
    if (rc != 0) {
        protobuf_c_message_free_unpacked(&r->base, NULL);
        return rc;
    }
    *out = &r->base;
    return 0;
}
