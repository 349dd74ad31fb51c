/* mx_history: validation of the history queries, their store reads and the
 * folding of minute cells into step buckets (see mx_history.h). Every query
 * is a top-level equality the store serves itself: {sk} on the minute series
 * (one per UTC day of the window), {hour, device|zone, type} on raw readings
 * (one per hour), {day, device|zone} on raw alerts (one per day); pages are
 * cut by the (ts, token) order the store sorts by. */
#include "mx_history.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pw_schema.h"
#include "pw_time.h"

/* ---- arguments --------------------------------------------------------- */

static int is_readings(mx_hist_kind k)
{
    return k == MX_HIST_DEVICE_READINGS || k == MX_HIST_ZONE_READINGS;
}

static int is_device(mx_hist_kind k)
{
    return k == MX_HIST_DEVICE_READINGS || k == MX_HIST_DEVICE_ALERTS;
}

const char *mx_hist_key_name(mx_hist_kind kind)
{
    return is_device(kind) ? "device_id" : "zone";
}

static int is_ascii_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

int mx_hist_normalize(const char *in, char *out, size_t outlen)
{
    const char *s = in ? in : "";
    while (*s && is_ascii_space((unsigned char)*s)) {
        s++;
    }
    size_t n = strlen(s);
    while (n > 0 && is_ascii_space((unsigned char)s[n - 1])) {
        n--;
    }
    if (outlen == 0 || n > outlen - 1) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        out[i] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    }
    out[n] = '\0';
    return 0;
}

/* value shown in an error: short printable ASCII only */
static const char *shown(const char *v)
{
    if (v == NULL || strlen(v) > 40) {
        return NULL;
    }
    for (const char *p = v; *p; p++) {
        if (*p < 0x20 || *p > 0x7e) {
            return NULL;
        }
    }
    return v;
}

static void fail(mx_param_error *e, const char *param, const char *value, const char *reason)
{
    const char *v = shown(value);
    if (v != NULL) {
        char msg[160];
        snprintf(msg, sizeof(msg), "%s, got \"%s\"", reason, v);
        mx_param_error_add(e, param, v, msg);
    } else {
        mx_param_error_add(e, param, NULL, reason);
    }
}

/* A required id-like text: strict UTF-8, no control characters, at most
 * max_chars, not empty once normalized; normalized into out. */
static int take_name(const char *param, const char *in, size_t max_chars, char *out, size_t outlen,
                     mx_param_error *e)
{
    size_t len = in ? strlen(in) : 0;
    size_t chars = 0;
    int ctrl = 0;
    char reason[96];
    if (len == 0) {
        fail(e, param, NULL, "is required");
        return -1;
    }
    if (pw_utf8_scan(in, len, 0, &chars, &ctrl) != 0) {
        fail(e, param, NULL, "must be valid UTF-8");
        return -1;
    }
    if (ctrl) {
        fail(e, param, NULL, "must not contain control characters");
        return -1;
    }
    if (chars > max_chars || mx_hist_normalize(in, out, outlen) != 0) {
        snprintf(reason, sizeof(reason), "must be at most %zu characters", max_chars);
        fail(e, param, NULL, reason);
        return -1;
    }
    if (out[0] == '\0') {
        fail(e, param, NULL, "is required");
        return -1;
    }
    return 0;
}

static int take_time(const char *param, const char *in, int64_t def, int64_t *out,
                     mx_param_error *e)
{
    if (in == NULL || in[0] == '\0') {
        *out = def;
        return 0;
    }
    if (mx_time_parse(in, out) != 0) {
        fail(e, param, in, "must be an RFC 3339 time or epoch milliseconds");
        return -1;
    }
    return 0;
}

static int take_limit(const mx_hist_args *a, uint32_t max, uint32_t def, uint32_t *out,
                      mx_param_error *e)
{
    if (!a->limit_set) {
        *out = def;
        return 0;
    }
    if (a->limit < 1 || a->limit > max) {
        char reason[80], got[16];
        snprintf(reason, sizeof(reason), "must be an integer between 1 and %u", max);
        snprintf(got, sizeof(got), "%u", a->limit);
        fail(e, "limit", got, reason);
        return -1;
    }
    *out = a->limit;
    return 0;
}

/* The cursor, when given, must decode and lie in the window. */
static int take_cursor(const mx_hist_args *a, mx_hist_query *q, mx_param_error *e)
{
    if (a->cursor == NULL || a->cursor[0] == '\0') {
        q->has_cursor = 0;
        return 0;
    }
    if (mx_cursor_decode(a->cursor, &q->cursor) != 0) {
        fail(e, "cursor", NULL, "is not a cursor of this API (pass next_cursor unchanged)");
        return -1;
    }
    if (q->cursor.ts_ms < q->from_ms || q->cursor.ts_ms >= q->to_ms) {
        fail(e, "cursor", NULL, "does not belong to this window");
        return -1;
    }
    q->has_cursor = 1;
    return 0;
}

static void window_reason(char *out, size_t n, int64_t max_ms)
{
    if (max_ms % PW_DAY_MS == 0) {
        snprintf(out, n, "the window from..to must be at most %lld days",
                 (long long)(max_ms / PW_DAY_MS));
    } else {
        snprintf(out, n, "the window from..to must be at most %lld hours",
                 (long long)(max_ms / PW_HOUR_MS));
    }
}

/* The step and page arguments of a readings query, once the window is valid. */
static int resolve_step(const mx_hist_args *a, int64_t step, mx_hist_query *q, mx_param_error *e)
{
    int64_t span = q->to_ms - q->from_ms;
    char reason[96];
    int bad = 0;
    if (step == MX_STEP_RAW) {
        q->step_ms = MX_STEP_RAW;
        if (span > MX_HIST_RAW_WINDOW_MAX_MS) {
            window_reason(reason, sizeof(reason), MX_HIST_RAW_WINDOW_MAX_MS);
            fail(e, "from", NULL, "with step=raw the window from..to must be at most 6 hours");
            return -1;
        }
        bad |= take_limit(a, MX_HIST_RAW_LIMIT_MAX, MX_HIST_RAW_LIMIT_DEF, &q->limit, e);
        bad |= take_cursor(a, q, e);
        return bad ? -1 : 0;
    }
    if (span > MX_HIST_WINDOW_MAX_MS) {
        window_reason(reason, sizeof(reason), MX_HIST_WINDOW_MAX_MS);
        fail(e, "from", NULL, reason);
        return -1;
    }
    if (a->limit_set) {
        fail(e, "limit", NULL, "is only for step=raw");
        bad = -1;
    }
    if (a->cursor != NULL && a->cursor[0] != '\0') {
        fail(e, "cursor", NULL, "is only for step=raw");
        bad = -1;
    }
    if (step == MX_STEP_AUTO) {
        step = mx_step_auto(q->from_ms, q->to_ms);
    } else if (mx_step_buckets(q->from_ms, q->to_ms, step) > MX_HIST_BUCKETS_MAX) {
        snprintf(reason, sizeof(reason), "gives more than %d buckets for this window",
                 MX_HIST_BUCKETS_MAX);
        fail(e, "step", a->step, reason);
        return -1;
    }
    q->step_ms = step;
    mx_step_align(q->from_ms, q->to_ms, step, &q->from_ms, &q->to_ms);
    return bad;
}

int mx_hist_resolve(mx_hist_kind kind, const mx_hist_args *a, int64_t now_ms, mx_hist_query *q,
                    mx_param_error *e)
{
    memset(q, 0, sizeof(*q));
    q->kind = kind;
    int bad = 0;
    size_t max_chars = is_device(kind) ? PW_MAX_ID_LEN : PW_MAX_ZONE_LEN;
    bad |= take_name(mx_hist_key_name(kind), a->key, max_chars, q->key, sizeof(q->key), e);
    int64_t step = 0;
    if (is_readings(kind)) {
        bad |= take_name("type", a->type, PW_MAX_TYPE_LEN, q->type, sizeof(q->type), e);
        if (mx_step_parse(a->step, &step) != 0) {
            fail(e, "step", a->step,
                 "must be auto, raw or a whole number of minutes from 1m to 1d (Nm, Nh, Nd)");
            bad = -1;
        }
    }
    int64_t back = is_readings(kind) ? PW_DAY_MS : 7 * PW_DAY_MS;
    int tbad = take_time("to", a->to, now_ms, &q->to_ms, e);
    tbad |= take_time("from", a->from, q->to_ms - back, &q->from_ms, e);
    if (tbad) {
        return -1;
    }
    if (q->from_ms >= q->to_ms) {
        fail(e, "from", a->from, "must be before to");
        return -1;
    }
    if (bad) {
        return -1;
    }
    if (is_readings(kind)) {
        return resolve_step(a, step, q, e);
    }
    q->step_ms = 0;
    if (q->to_ms - q->from_ms > MX_HIST_WINDOW_MAX_MS) {
        char reason[96];
        window_reason(reason, sizeof(reason), MX_HIST_WINDOW_MAX_MS);
        fail(e, "from", NULL, reason);
        return -1;
    }
    bad |= take_limit(a, MX_HIST_ALERT_LIMIT_MAX, MX_HIST_ALERT_LIMIT_DEF, &q->limit, e);
    bad |= take_cursor(a, q, e);
    return bad ? -1 : 0;
}

/* ---- folding ----------------------------------------------------------- */

int mx_hist_fold_init(mx_hist_fold *f, int64_t from_ms, int64_t to_ms, int64_t step_ms)
{
    memset(f, 0, sizeof(*f));
    if (step_ms <= 0 || to_ms <= from_ms || (to_ms - from_ms) % step_ms != 0 ||
        (to_ms - from_ms) / step_ms > MX_HIST_BUCKETS_MAX) {
        return -1;
    }
    f->from_ms = from_ms;
    f->to_ms = to_ms;
    f->step_ms = step_ms;
    f->n = (size_t)((to_ms - from_ms) / step_ms);
    f->b = calloc(f->n, sizeof(*f->b));
    return f->b ? 0 : -1;
}

void mx_hist_fold_free(mx_hist_fold *f)
{
    free(f->b);
    f->b = NULL;
    f->n = 0;
}

static void acc_add(mx_hist_acc *a, uint64_t count, double sum, double min, double max,
                    int64_t first, int64_t last)
{
    if (a->count == 0) {
        a->min = min;
        a->max = max;
        a->first_ms = first;
        a->last_ms = last;
    } else {
        a->min = min < a->min ? min : a->min;
        a->max = max > a->max ? max : a->max;
        a->first_ms = first < a->first_ms ? first : a->first_ms;
        a->last_ms = last > a->last_ms ? last : a->last_ms;
    }
    a->count += count;
    a->sum += sum;
}

int mx_hist_fold_state(mx_hist_fold *f, int64_t hour_ms, const Iot__V1__SeriesState *st)
{
    size_t n = st->n_minute;
    if (st->n_count != n || st->n_sum != n || st->n_min != n || st->n_max != n ||
        st->n_first_ms != n || st->n_last_ms != n) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (st->minute[i] > 59) {
            return -1;
        }
        int64_t cell = hour_ms + (int64_t)st->minute[i] * MX_MINUTE_MS;
        if (cell < f->from_ms || cell >= f->to_ms || st->count[i] == 0) {
            continue;
        }
        mx_hist_acc *a = &f->b[(cell - f->from_ms) / f->step_ms];
        acc_add(a, st->count[i], st->sum[i], st->min[i], st->max[i], st->first_ms[i],
                st->last_ms[i]);
    }
    if (f->unit[0] == '\0' && st->unit != NULL && st->unit[0] != '\0') {
        snprintf(f->unit, sizeof(f->unit), "%s", st->unit);
        pw_utf8_trim_tail(f->unit);
    }
    return 0;
}

const char *mx_hist_type_unit(const char *type)
{
    if (strcmp(type, "temperature") == 0) {
        return "C";
    }
    if (strcmp(type, "pressure") == 0) {
        return "hPa";
    }
    return "";
}

static char *dup_str(const char *s)
{
    return strdup(s ? s : "");
}

static Iot__V1__ReadingHistory *history_new(const char *type, const char *unit)
{
    Iot__V1__ReadingHistory *h = malloc(sizeof(*h));
    if (h == NULL) {
        return NULL;
    }
    iot__v1__reading_history__init(h);
    h->type = dup_str(type);
    h->unit = dup_str(unit);
    if (h->type == NULL || h->unit == NULL) {
        protobuf_c_message_free_unpacked(&h->base, NULL);
        return NULL;
    }
    return h;
}

Iot__V1__ReadingHistory *mx_hist_fold_build(const mx_hist_fold *f, const char *type,
                                            const char *fallback_unit)
{
    Iot__V1__ReadingHistory *h = history_new(type, f->unit[0] ? f->unit : fallback_unit);
    char step[16];
    mx_step_format(f->step_ms, step, sizeof(step));
    char *step_text = h ? strdup(step) : NULL;
    if (step_text == NULL) {
        if (h != NULL) {
            protobuf_c_message_free_unpacked(&h->base, NULL);
        }
        return NULL;
    }
    h->step = step_text;
    h->from_ms = f->from_ms;
    h->to_ms = f->to_ms;
    h->step_ms = f->step_ms;
    size_t used = 0;
    for (size_t i = 0; i < f->n; i++) {
        used += f->b[i].count ? 1 : 0;
    }
    h->buckets = calloc(used ? used : 1, sizeof(*h->buckets));
    if (h->buckets == NULL) {
        protobuf_c_message_free_unpacked(&h->base, NULL);
        return NULL;
    }
    for (size_t i = 0; i < f->n; i++) {
        const mx_hist_acc *a = &f->b[i];
        if (a->count == 0) {
            continue;
        }
        Iot__V1__ReadingBucket *b = malloc(sizeof(*b));
        if (b == NULL) {
            protobuf_c_message_free_unpacked(&h->base, NULL);
            return NULL;
        }
        iot__v1__reading_bucket__init(b);
        b->start_ms = f->from_ms + (int64_t)i * f->step_ms;
        b->count = a->count;
        b->avg = a->sum / (double)a->count;
        b->min = a->min;
        b->max = a->max;
        b->first_ts_ms = a->first_ms;
        b->last_ts_ms = a->last_ms;
        h->buckets[h->n_buckets++] = b;
        h->count += a->count;
    }
    return h;
}

/* ---- store reads ------------------------------------------------------- */

/* What a find calls per document: 0 to go on, 1 to stop, -1 on failure
 * (err set). */
typedef int (*mx_doc_fn)(void *ctx, const bson_t *doc, char *err, size_t errlen);

/* One find on coll with filter, projection and sort (may be NULL). */
static int run_find(mx_store *store, const mx_hist_query *q, const char *coll_name,
                    const bson_t *filter, const bson_t *opts_in, const char *purpose, mx_doc_fn fn,
                    void *ctx, char *err, size_t errlen)
{
    bson_t opts;
    bson_copy_to(opts_in, &opts);
    int rc = mx_store_limit(store, &opts, q->deadline_us, err, errlen);
    if (rc != 0) {
        bson_destroy(&opts);
        return rc;
    }
    mongoc_client_t *client = mx_store_pop(store);
    mongoc_collection_t *coll = mx_store_collection(store, client, coll_name);
    mx_store_check(store, coll, filter, purpose, 0);
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, filter, &opts, NULL);
    const bson_t *doc;
    int stop = 0;
    while (rc == 0 && !stop && mongoc_cursor_next(cur, &doc)) {
        int r = fn(ctx, doc, err, errlen);
        if (r < 0) {
            rc = MX_STORE_FAILED;
        }
        stop = r > 0;
    }
    bson_error_t error;
    if (rc == 0 && !stop && mongoc_cursor_error(cur, &error)) {
        rc = mx_store_failure(store, &error, q->deadline_us, err, errlen);
    }
    mongoc_cursor_destroy(cur);
    mongoc_collection_destroy(coll);
    mx_store_push(store, client);
    bson_destroy(&opts);
    return rc;
}

static int series_doc(void *ctx, const bson_t *doc, char *err, size_t errlen)
{
    mx_hist_fold *f = ctx;
    int64_t hour = mx_bson_time_ms(doc, PW_F_HOUR, -1);
    int bad = 0;
    Iot__V1__SeriesState *st = (Iot__V1__SeriesState *)pw_store_unpack(
        doc, PW_F_STATE, &iot__v1__series_state__descriptor, &bad);
    int rc = 0;
    if (bad || (st != NULL && (hour < 0 || mx_hist_fold_state(f, hour, st) != 0))) {
        snprintf(err, errlen, "a minute series document does not decode");
        rc = -1;
    }
    if (st != NULL) {
        protobuf_c_message_free_unpacked(&st->base, NULL);
    }
    return rc;
}

/* "<k>\x1f<key>\x1f<type>\x1f<YYYY-MM-DD>" of the UTC day of day_ms. */
static void series_sk(const mx_hist_query *q, int64_t day_ms, char *out, size_t n)
{
    char day[PW_DAY_LEN];
    pw_time_utc_day(day_ms, day);
    snprintf(out, n, "%s" MX_SERIES_SEP "%s" MX_SERIES_SEP "%s" MX_SERIES_SEP "%s",
             is_device(q->kind) ? "d" : "z", q->key, q->type, day);
}

/* The minute series of the window folded: one find({sk}) per UTC day. */
static int read_series(mx_store *store, const mx_hist_query *q, mx_hist_fold *f, char *err,
                       size_t errlen)
{
    bson_t *opts = BCON_NEW("projection", "{", PW_F_ID, BCON_INT32(0), PW_F_HOUR, BCON_INT32(1),
                            PW_F_STATE, BCON_INT32(1), "}");
    int rc = 0;
    for (int64_t day = pw_time_day_start(q->from_ms); rc == 0 && day < q->to_ms; day += PW_DAY_MS) {
        char sk[MX_HIST_KEY_BYTES + PW_MAX_TYPE_BYTES + 32];
        series_sk(q, day, sk, sizeof(sk));
        bson_t filter = BSON_INITIALIZER;
        BSON_APPEND_UTF8(&filter, MX_F_SK, sk);
        rc = run_find(store, q, MX_COLL_SERIES, &filter, opts, "minute series", series_doc, f, err,
                      errlen);
        bson_destroy(&filter);
    }
    bson_destroy(opts);
    return rc;
}

/* Is (ts, token) after the cursor in the order of the page? asc: ts
 * ascending; else ts descending; ties by token ascending either way. */
static int after_cursor(const mx_hist_query *q, int asc, int64_t ts, const char *token)
{
    if (!q->has_cursor) {
        return 1;
    }
    if (ts != q->cursor.ts_ms) {
        return asc ? ts > q->cursor.ts_ms : ts < q->cursor.ts_ms;
    }
    return strcmp(token, q->cursor.token) > 0;
}

/* A page being filled: up to limit items; more = one more item exists. */
typedef struct {
    const mx_hist_query *q;
    void **items;
    size_t n;
    int more;
    int64_t last_ts;
    const char *last_token;           /* owned by the last item */
    char unit[PW_MAX_UNIT_BYTES + 1]; /* raw readings: the first point's stored unit */
} mx_page;

static int page_init(mx_page *p, const mx_hist_query *q)
{
    memset(p, 0, sizeof(*p));
    p->q = q;
    p->items = calloc(q->limit ? q->limit : 1, sizeof(*p->items));
    return p->items ? 0 : -1;
}

/* 1 when the item at (ts, token) belongs on the page (room left), 0 when
 * it is skipped, -1 when the page is full (stop: more = 1). */
static int page_wants(mx_page *p, int asc, int64_t ts, const char *token)
{
    const mx_hist_query *q = p->q;
    if (ts < q->from_ms || ts >= q->to_ms || !after_cursor(q, asc, ts, token)) {
        return 0;
    }
    if (p->n >= q->limit) {
        p->more = 1;
        return -1;
    }
    return 1;
}

static int raw_doc(void *ctx, const bson_t *doc, char *err, size_t errlen)
{
    mx_page *p = ctx;
    int64_t ts = mx_bson_time_ms(doc, PW_F_TS, -1);
    const char *token = mx_bson_str(doc, PW_F_ID, "");
    int w = page_wants(p, 1, ts, token);
    if (w <= 0) {
        return w < 0 ? 1 : 0;
    }
    Iot__V1__ReadingPoint *pt = malloc(sizeof(*pt));
    if (pt == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    iot__v1__reading_point__init(pt);
    pt->ts_ms = ts;
    pt->value = mx_bson_double(doc, PW_F_VALUE, 0.0);
    pt->device_id = dup_str(mx_bson_str(doc, PW_F_DEVICE, ""));
    pt->token = dup_str(token);
    p->items[p->n++] = pt;
    if (pt->device_id == NULL || pt->token == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    p->last_ts = ts;
    p->last_token = pt->token;
    if (p->unit[0] == '\0') {
        snprintf(p->unit, sizeof(p->unit), "%s", mx_bson_str(doc, PW_F_UNIT, ""));
        pw_utf8_trim_tail(p->unit);
    }
    return 0;
}

/* The next page's cursor (malloc'd), or NULL on the last page or ENOMEM. */
static char *page_cursor(const mx_page *p)
{
    if (!p->more || p->n == 0) {
        return NULL;
    }
    mx_cursor c;
    c.ts_ms = p->last_ts;
    snprintf(c.token, sizeof(c.token), "%s", p->last_token);
    char text[MX_CURSOR_TEXT_MAX];
    return mx_cursor_encode(&c, text, sizeof(text)) == 0 ? strdup(text) : NULL;
}

/* Raw points: {hour, device|zone, type} per hour of the window from the
 * cursor's hour on, sorted (ts, _id), until the page is full. */
static int read_raw(mx_store *store, const mx_hist_query *q, mx_page *p, char *err, size_t errlen)
{
    bson_t *opts = BCON_NEW("projection", "{", PW_F_TS, BCON_INT32(1), PW_F_VALUE, BCON_INT32(1),
                            PW_F_DEVICE, BCON_INT32(1), PW_F_UNIT, BCON_INT32(1), "}", "sort", "{",
                            PW_F_TS, BCON_INT32(1), PW_F_ID, BCON_INT32(1), "}");
    int64_t start = pw_time_hour_start(q->has_cursor ? q->cursor.ts_ms : q->from_ms);
    int rc = 0;
    for (int64_t hour = start; rc == 0 && !p->more && hour < q->to_ms; hour += PW_HOUR_MS) {
        bson_t filter = BSON_INITIALIZER;
        BSON_APPEND_DATE_TIME(&filter, PW_F_HOUR, hour);
        BSON_APPEND_UTF8(&filter, is_device(q->kind) ? PW_F_DEVICE : PW_F_ZONE, q->key);
        BSON_APPEND_UTF8(&filter, PW_F_TYPE, q->type);
        rc = run_find(store, q, PW_COLL_TELEMETRY, &filter, opts, "raw readings page", raw_doc, p,
                      err, errlen);
        bson_destroy(&filter);
    }
    bson_destroy(opts);
    return rc;
}

static int alert_doc(void *ctx, const bson_t *doc, char *err, size_t errlen)
{
    mx_page *p = ctx;
    int64_t ts = mx_bson_time_ms(doc, PW_F_TS, -1);
    const char *token = mx_bson_str(doc, PW_F_ID, "");
    int w = page_wants(p, 0, ts, token);
    if (w <= 0) {
        return w < 0 ? 1 : 0;
    }
    Iot__V1__AlertEntry *a = malloc(sizeof(*a));
    if (a == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    iot__v1__alert_entry__init(a);
    a->ts_ms = ts;
    a->device_id = dup_str(mx_bson_str(doc, PW_F_DEVICE, ""));
    a->zone = dup_str(mx_bson_str(doc, PW_F_ZONE, ""));
    a->severity = dup_str(mx_bson_str(doc, PW_F_SEVERITY, ""));
    a->code = dup_str(mx_bson_str(doc, PW_F_CODE, ""));
    a->message = dup_str(mx_bson_str(doc, PW_F_MESSAGE, ""));
    a->token = dup_str(token);
    p->items[p->n++] = a;
    if (!a->device_id || !a->zone || !a->severity || !a->code || !a->message || !a->token) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    p->last_ts = ts;
    p->last_token = a->token;
    return 0;
}

/* Alerts: {day, device|zone} per UTC day, newest day first (from the
 * cursor's day on), sorted (ts desc, _id), until the page is full. */
static int read_alerts(mx_store *store, const mx_hist_query *q, mx_page *p, char *err,
                       size_t errlen)
{
    bson_t *opts = BCON_NEW("projection", "{", PW_F_TS, BCON_INT32(1), PW_F_DEVICE, BCON_INT32(1),
                            PW_F_ZONE, BCON_INT32(1), PW_F_SEVERITY, BCON_INT32(1), PW_F_CODE,
                            BCON_INT32(1), PW_F_MESSAGE, BCON_INT32(1), "}", "sort", "{", PW_F_TS,
                            BCON_INT32(-1), PW_F_ID, BCON_INT32(1), "}");
    int64_t first = pw_time_day_start(q->from_ms);
    int64_t day = pw_time_day_start(q->has_cursor ? q->cursor.ts_ms : q->to_ms - 1);
    int rc = 0;
    for (; rc == 0 && !p->more && day >= first; day -= PW_DAY_MS) {
        char name[PW_DAY_LEN];
        pw_time_utc_day(day, name);
        bson_t filter = BSON_INITIALIZER;
        BSON_APPEND_UTF8(&filter, PW_F_DAY, name);
        BSON_APPEND_UTF8(&filter, is_device(q->kind) ? PW_F_DEVICE : PW_F_ZONE, q->key);
        rc = run_find(store, q, PW_COLL_ALERTS, &filter, opts, "alerts page", alert_doc, p, err,
                      errlen);
        bson_destroy(&filter);
    }
    bson_destroy(opts);
    return rc;
}

/* ---- responses --------------------------------------------------------- */

/* Wraps a history (taken) into the response of q's kind. */
static ProtobufCMessage *readings_response(const mx_hist_query *q, Iot__V1__ReadingHistory *h)
{
    char *key = strdup(q->key);
    if (is_device(q->kind)) {
        Iot__V1__DeviceReadingsResponse *r = malloc(sizeof(*r));
        if (r != NULL) {
            iot__v1__device_readings_response__init(r);
            r->device_id = key;
            r->history = h;
            return &r->base;
        }
    } else {
        Iot__V1__ZoneReadingsResponse *r = malloc(sizeof(*r));
        if (r != NULL) {
            iot__v1__zone_readings_response__init(r);
            r->zone = key;
            r->history = h;
            return &r->base;
        }
    }
    free(key);
    protobuf_c_message_free_unpacked(&h->base, NULL);
    return NULL;
}

static int finish(ProtobufCMessage *msg, ProtobufCMessage **out, char *err, size_t errlen)
{
    if (msg == NULL) {
        snprintf(err, errlen, "out of memory");
        return MX_STORE_FAILED;
    }
    *out = msg;
    return 0;
}

static int run_bucketed(mx_store *store, const mx_hist_query *q, ProtobufCMessage **out, char *err,
                        size_t errlen)
{
    mx_hist_fold f;
    if (mx_hist_fold_init(&f, q->from_ms, q->to_ms, q->step_ms) != 0) {
        snprintf(err, errlen, "out of memory");
        return MX_STORE_FAILED;
    }
    int rc = read_series(store, q, &f, err, errlen);
    Iot__V1__ReadingHistory *h = NULL;
    if (rc == 0) {
        h = mx_hist_fold_build(&f, q->type, mx_hist_type_unit(q->type));
    }
    mx_hist_fold_free(&f);
    if (rc != 0) {
        return rc;
    }
    return finish(h ? readings_response(q, h) : NULL, out, err, errlen);
}

static void page_free(mx_page *p)
{
    for (size_t i = 0; i < p->n; i++) {
        protobuf_c_message_free_unpacked(p->items[i], NULL);
    }
    free(p->items);
    p->items = NULL;
    p->n = 0;
}

static int run_raw(mx_store *store, const mx_hist_query *q, ProtobufCMessage **out, char *err,
                   size_t errlen)
{
    mx_page p;
    if (page_init(&p, q) != 0) {
        snprintf(err, errlen, "out of memory");
        return MX_STORE_FAILED;
    }
    int rc = read_raw(store, q, &p, err, errlen);
    if (rc != 0) {
        page_free(&p);
        return rc;
    }
    /* the stored unit of the points (one per reading type), else the type's */
    Iot__V1__ReadingHistory *h =
        history_new(q->type, p.unit[0] ? p.unit : mx_hist_type_unit(q->type));
    char *step = strdup("raw");
    char *next = page_cursor(&p);
    if (h == NULL || step == NULL || (p.more && next == NULL)) {
        free(step);
        free(next);
        page_free(&p);
        if (h != NULL) {
            protobuf_c_message_free_unpacked(&h->base, NULL);
        }
        return finish(NULL, out, err, errlen);
    }
    h->step = step;
    if (next != NULL) {
        h->next_cursor = next;
    }
    h->from_ms = q->from_ms;
    h->to_ms = q->to_ms;
    h->points = (Iot__V1__ReadingPoint **)p.items;
    h->n_points = p.n;
    h->count = p.n;
    return finish(readings_response(q, h), out, err, errlen);
}

static ProtobufCMessage *alerts_response(const mx_hist_query *q, Iot__V1__AlertPage *page)
{
    char *key = strdup(q->key);
    if (is_device(q->kind)) {
        Iot__V1__DeviceAlertsResponse *r = malloc(sizeof(*r));
        if (r != NULL) {
            iot__v1__device_alerts_response__init(r);
            r->device_id = key;
            r->page = page;
            return &r->base;
        }
    } else {
        Iot__V1__ZoneAlertsResponse *r = malloc(sizeof(*r));
        if (r != NULL) {
            iot__v1__zone_alerts_response__init(r);
            r->zone = key;
            r->page = page;
            return &r->base;
        }
    }
    free(key);
    protobuf_c_message_free_unpacked(&page->base, NULL);
    return NULL;
}

static int run_alerts(mx_store *store, const mx_hist_query *q, ProtobufCMessage **out, char *err,
                      size_t errlen)
{
    mx_page p;
    Iot__V1__AlertPage *page = malloc(sizeof(*page));
    if (page == NULL || page_init(&p, q) != 0) {
        free(page);
        snprintf(err, errlen, "out of memory");
        return MX_STORE_FAILED;
    }
    iot__v1__alert_page__init(page);
    int rc = read_alerts(store, q, &p, err, errlen);
    if (rc != 0) {
        page_free(&p);
        free(page);
        return rc;
    }
    page->from_ms = q->from_ms;
    page->to_ms = q->to_ms;
    char *next = page_cursor(&p);
    if (p.more && next == NULL) {
        page_free(&p);
        free(page);
        return finish(NULL, out, err, errlen);
    }
    if (next != NULL) {
        page->next_cursor = next;
    }
    page->alerts = (Iot__V1__AlertEntry **)p.items;
    page->n_alerts = p.n;
    return finish(alerts_response(q, page), out, err, errlen);
}

int mx_history_run(mx_store *store, const mx_hist_query *q, ProtobufCMessage **out, char *err,
                   size_t errlen)
{
    if (!is_readings(q->kind)) {
        return run_alerts(store, q, out, err, errlen);
    }
    if (q->step_ms == MX_STEP_RAW) {
        return run_raw(store, q, out, err, errlen);
    }
    return run_bucketed(store, q, out, err, errlen);
}
