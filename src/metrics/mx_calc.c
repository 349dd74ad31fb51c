/* mx_calc: bucket arithmetic and response building for the views. */
#include "mx_calc.h"

#include <stdlib.h>
#include <string.h>

#include "mx_semver.h"

void mx_window(int64_t now_ms, uint32_t hours, int64_t *from_ms, int64_t *to_ms)
{
    int64_t to = pw_time_hour_start(now_ms) + PW_HOUR_MS;
    *to_ms = to;
    *from_ms = to - ((int64_t)hours + 1) * PW_HOUR_MS;
}

size_t mx_window_days(int64_t from_ms, int64_t to_ms, mx_day_span *out, size_t max)
{
    size_t n = 0;
    if (from_ms >= to_ms) {
        return 0;
    }
    for (int64_t d = pw_time_day_start(from_ms); d < to_ms && n < max; d += PW_DAY_MS) {
        pw_time_utc_day(d, out[n].day);
        out[n].start_ms = d;
        out[n].full = d >= from_ms && d + PW_DAY_MS <= to_ms;
        n++;
    }
    return n;
}

void mx_trend_days(int64_t now_ms, char days[MX_TREND_DAYS][PW_DAY_LEN])
{
    int64_t today = pw_time_day_start(now_ms);
    for (int i = 0; i < MX_TREND_DAYS; i++) {
        pw_time_utc_day(today - (int64_t)(MX_TREND_DAYS - 1 - i) * PW_DAY_MS, days[i]);
    }
}

int mx_trend_day_index(char days[MX_TREND_DAYS][PW_DAY_LEN], const char *day)
{
    for (int i = 0; i < MX_TREND_DAYS; i++) {
        if (strcmp(days[i], day) == 0) {
            return i;
        }
    }
    return -1;
}

void mx_table_init(mx_table *t)
{
    memset(t, 0, sizeof(*t));
}

void mx_table_free(mx_table *t)
{
    for (size_t i = 0; i < t->n; i++) {
        free(t->v[i].key);
    }
    free(t->v);
    mx_table_init(t);
}

/* Position of key, or where it would be inserted (*found = 0). */
static size_t table_search(const mx_table *t, const char *key, int *found)
{
    size_t lo = 0, hi = t->n;
    *found = 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(t->v[mid].key, key);
        if (c == 0) {
            *found = 1;
            return mid;
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

const mx_entry *mx_table_find(const mx_table *t, const char *key)
{
    int found;
    size_t i = table_search(t, key, &found);
    return found ? &t->v[i] : NULL;
}

mx_entry *mx_table_get(mx_table *t, const char *key)
{
    int found;
    size_t lo = table_search(t, key, &found);
    if (found) {
        return &t->v[lo];
    }
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        mx_entry *v = realloc(t->v, cap * sizeof(*v));
        if (v == NULL) {
            return NULL;
        }
        t->v = v;
        t->cap = cap;
    }
    char *k = strdup(key);
    if (k == NULL) {
        return NULL;
    }
    memmove(&t->v[lo + 1], &t->v[lo], (t->n - lo) * sizeof(*t->v));
    memset(&t->v[lo], 0, sizeof(*t->v));
    t->v[lo].key = k;
    t->n++;
    return &t->v[lo];
}

int mx_table_add_bucket(mx_table *t, const char *key, uint64_t count, double sum, double min,
                        double max, int has_range)
{
    if (count == 0) {
        return 0;
    }
    mx_entry *e = mx_table_get(t, key);
    if (e == NULL) {
        return -1;
    }
    e->count += count;
    e->sum += sum;
    if (has_range) {
        if (!e->has_range || min < e->min) {
            e->min = min;
        }
        if (!e->has_range || max > e->max) {
            e->max = max;
        }
        e->has_range = 1;
    }
    return 0;
}

int mx_table_add_count(mx_table *t, const char *key, uint64_t count, int64_t last_ms)
{
    mx_entry *e = mx_table_get(t, key);
    if (e == NULL) {
        return -1;
    }
    e->count += count;
    if (last_ms > e->last_ms) {
        e->last_ms = last_ms;
    }
    return 0;
}

/* calloc'd array of n message pointers (non-NULL even for n == 0 is not needed). */
static void **ptr_array(size_t n)
{
    return n ? calloc(n, sizeof(void *)) : NULL;
}

Iot__V1__ZoneTemperatureResponse *mx_build_temperature(const mx_table *zones, int64_t from_ms,
                                                       int64_t to_ms, uint32_t hours)
{
    Iot__V1__ZoneTemperatureResponse *r = malloc(sizeof(*r));
    if (r == NULL) {
        return NULL;
    }
    iot__v1__zone_temperature_response__init(r);
    r->from_ms = from_ms;
    r->to_ms = to_ms;
    r->window_hours = hours;
    r->zones = (Iot__V1__ZoneTemperature **)ptr_array(zones->n);
    if (zones->n && r->zones == NULL) {
        goto oom;
    }
    for (size_t i = 0; i < zones->n; i++) {
        const mx_entry *e = &zones->v[i];
        Iot__V1__ZoneTemperature *z = malloc(sizeof(*z));
        if (z == NULL) {
            goto oom;
        }
        iot__v1__zone_temperature__init(z);
        r->zones[r->n_zones++] = z;
        if ((z->zone = strdup(e->key)) == NULL) {
            goto oom;
        }
        z->count = e->count;
        z->avg_c = e->count ? e->sum / (double)e->count : 0.0;
        z->min_c = e->has_range ? e->min : 0.0;
        z->max_c = e->has_range ? e->max : 0.0;
    }
    return r;
oom:
    protobuf_c_message_free_unpacked(&r->base, NULL);
    return NULL;
}

static const char *const mx_severities[] = {"critical", "warning", "info"};
#define MX_NSEV (sizeof(mx_severities) / sizeof(mx_severities[0]))

static int known_severity(const char *s)
{
    for (size_t i = 0; i < MX_NSEV; i++) {
        if (strcmp(s, mx_severities[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

static Iot__V1__SeverityCount *severity_count(const char *name, uint64_t count)
{
    Iot__V1__SeverityCount *s = malloc(sizeof(*s));
    if (s == NULL) {
        return NULL;
    }
    iot__v1__severity_count__init(s);
    if ((s->severity = strdup(name)) == NULL) {
        free(s);
        return NULL;
    }
    s->count = count;
    return s;
}

/* count descending, then code ascending */
static int cmp_code_rank(const void *a, const void *b)
{
    const mx_entry *x = *(const mx_entry *const *)a, *y = *(const mx_entry *const *)b;
    if (x->count != y->count) {
        return x->count > y->count ? -1 : 1;
    }
    return strcmp(x->key, y->key);
}

static int fill_top_codes(Iot__V1__AlertBreakdownResponse *r, const mx_table *codes, uint32_t top)
{
    const mx_entry **rank = codes->n ? malloc(codes->n * sizeof(*rank)) : NULL;
    if (codes->n && rank == NULL) {
        return -1;
    }
    for (size_t i = 0; i < codes->n; i++) {
        rank[i] = &codes->v[i];
    }
    if (codes->n > 1) {
        qsort(rank, codes->n, sizeof(*rank), cmp_code_rank);
    }
    size_t n = codes->n < top ? codes->n : top;
    r->top_codes = (Iot__V1__CodeCount **)ptr_array(n);
    int rc = (n && r->top_codes == NULL) ? -1 : 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        Iot__V1__CodeCount *c = malloc(sizeof(*c));
        if (c == NULL) {
            rc = -1;
            break;
        }
        iot__v1__code_count__init(c);
        r->top_codes[r->n_top_codes++] = c;
        c->count = rank[i]->count;
        if ((c->code = strdup(rank[i]->key)) == NULL) {
            rc = -1;
        }
    }
    free(rank);
    return rc;
}

Iot__V1__AlertBreakdownResponse *mx_build_alerts(const mx_table *severities, const mx_table *codes,
                                                 uint32_t top, int64_t from_ms, int64_t to_ms,
                                                 uint32_t hours)
{
    Iot__V1__AlertBreakdownResponse *r = malloc(sizeof(*r));
    if (r == NULL) {
        return NULL;
    }
    iot__v1__alert_breakdown_response__init(r);
    r->from_ms = from_ms;
    r->to_ms = to_ms;
    r->window_hours = hours;
    size_t extra = 0;
    for (size_t i = 0; i < severities->n; i++) {
        extra += !known_severity(severities->v[i].key);
        r->total += severities->v[i].count;
    }
    r->by_severity = (Iot__V1__SeverityCount **)ptr_array(MX_NSEV + extra);
    if (r->by_severity == NULL) {
        goto oom;
    }
    for (size_t i = 0; i < MX_NSEV; i++) {
        const mx_entry *e = mx_table_find(severities, mx_severities[i]);
        Iot__V1__SeverityCount *s = severity_count(mx_severities[i], e ? e->count : 0);
        if (s == NULL) {
            goto oom;
        }
        r->by_severity[r->n_by_severity++] = s;
    }
    for (size_t i = 0; i < severities->n; i++) {
        if (!known_severity(severities->v[i].key)) {
            Iot__V1__SeverityCount *s =
                severity_count(severities->v[i].key, severities->v[i].count);
            if (s == NULL) {
                goto oom;
            }
            r->by_severity[r->n_by_severity++] = s;
        }
    }
    if (fill_top_codes(r, codes, top) != 0) {
        goto oom;
    }
    return r;
oom:
    protobuf_c_message_free_unpacked(&r->base, NULL);
    return NULL;
}

Iot__V1__ActivityTrendResponse *mx_build_trend(char days[MX_TREND_DAYS][PW_DAY_LEN],
                                               const uint64_t readings[MX_TREND_DAYS],
                                               const uint64_t alerts[MX_TREND_DAYS],
                                               const uint64_t devices[MX_TREND_DAYS])
{
    Iot__V1__ActivityTrendResponse *r = malloc(sizeof(*r));
    if (r == NULL) {
        return NULL;
    }
    iot__v1__activity_trend_response__init(r);
    r->days = (Iot__V1__DayActivity **)ptr_array(MX_TREND_DAYS);
    if (r->days == NULL) {
        goto oom;
    }
    for (int i = 0; i < MX_TREND_DAYS; i++) {
        Iot__V1__DayActivity *d = malloc(sizeof(*d));
        if (d == NULL) {
            goto oom;
        }
        iot__v1__day_activity__init(d);
        r->days[r->n_days++] = d;
        if ((d->day = strdup(days[i])) == NULL) {
            goto oom;
        }
        d->readings = readings[i];
        d->alerts = alerts[i];
        d->active_devices = devices[i];
    }
    return r;
oom:
    protobuf_c_message_free_unpacked(&r->base, NULL);
    return NULL;
}

/* newest first */
static int cmp_version_desc(const void *a, const void *b)
{
    const mx_entry *x = *(const mx_entry *const *)a, *y = *(const mx_entry *const *)b;
    int c = mx_semver_cmp(y->key, x->key);
    return c != 0 ? c : strcmp(x->key, y->key);
}

Iot__V1__FirmwareStatusResponse *mx_build_firmware(const mx_table *firmware)
{
    Iot__V1__FirmwareStatusResponse *r = malloc(sizeof(*r));
    const mx_entry **order = firmware->n ? malloc(firmware->n * sizeof(*order)) : NULL;
    if (r == NULL || (firmware->n && order == NULL)) {
        free(r);
        free(order);
        return NULL;
    }
    iot__v1__firmware_status_response__init(r);
    for (size_t i = 0; i < firmware->n; i++) {
        order[i] = &firmware->v[i];
        r->total_devices += firmware->v[i].count;
    }
    if (firmware->n > 1) {
        qsort(order, firmware->n, sizeof(*order), cmp_version_desc);
    }
    r->versions = (Iot__V1__FirmwareVersion **)ptr_array(firmware->n);
    if (firmware->n && r->versions == NULL) {
        goto oom;
    }
    if (firmware->n && (r->newest = strdup(order[0]->key)) == NULL) {
        goto oom;
    }
    for (size_t i = 0; i < firmware->n; i++) {
        Iot__V1__FirmwareVersion *v = malloc(sizeof(*v));
        if (v == NULL) {
            goto oom;
        }
        iot__v1__firmware_version__init(v);
        r->versions[r->n_versions++] = v;
        if ((v->firmware = strdup(order[i]->key)) == NULL) {
            goto oom;
        }
        v->devices = order[i]->count;
        v->share = r->total_devices ? (double)v->devices / (double)r->total_devices : 0.0;
        v->last_seen_ms = order[i]->last_ms;
        v->outdated = mx_semver_cmp(order[i]->key, order[0]->key) < 0;
        if (v->outdated) {
            r->outdated_devices += v->devices;
        }
    }
    free(order);
    return r;
oom:
    free(order);
    protobuf_c_message_free_unpacked(&r->base, NULL);
    return NULL;
}
