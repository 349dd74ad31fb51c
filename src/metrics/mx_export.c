/* mx_export: parameters, row formatting and the streamed answer of the
 * readings and alerts export (see mx_export.h). */
#include "mx_export.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pw_http.h"
#include "pw_log.h"
#include "pw_schema.h"
#include "pw_store.h"

#define MX_EXPORT_CHUNK (64u * 1024) /* output produced per refill, about */
#define MX_EXPORT_BATCH 1000         /* documents per cursor batch */
#define MX_EXPORT_PREFIX "/v1/export/"

struct mx_exporter {
    mx_store *store;
    unsigned max_streams;
    long query_timeout_ms;
    atomic_uint running;
};

/* ---- parameters ------------------------------------------------------------ */

enum { MX_EX_FORMAT, MX_EX_DEVICE, MX_EX_ZONE, MX_EX_TYPE, MX_EX_SEVERITY, MX_EX_FROM, MX_EX_TO };

static const char *const mx_ex_names[] = {"format",   "device", "zone", "type",
                                          "severity", "from",   "to"};
#define MX_EX_NPARAMS (sizeof(mx_ex_names) / sizeof(mx_ex_names[0]))

static void mx_ex_error(mx_param_error *e, const char *param, const char *value, const char *fmt,
                        ...) __attribute__((format(printf, 4, 5)));

/* Records one problem the way mx_params does: a summary line and details. */
static void mx_ex_error(mx_param_error *e, const char *param, const char *value, const char *fmt,
                        ...)
{
    char reason[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    size_t used = strlen(e->message);
    snprintf(e->message + used, sizeof(e->message) - used, "%s%s: %s", e->count ? "; " : "", param,
             reason);
    if (++e->count > MX_PARAM_DETAILS_MAX || e->details == NULL) {
        return;
    }
    json_t *d = json_pack("{s:s, s:s}", "param", param, "reason", reason);
    if (d != NULL && value != NULL) {
        char shown[65];
        snprintf(shown, sizeof(shown), "%s", value);
        pw_utf8_trim_tail(shown);
        json_t *v = json_string(shown);
        if (v != NULL) {
            json_object_set_new(d, "value", v);
        }
    }
    if (d != NULL) {
        json_array_append_new(e->details, d);
    }
}

/* 1 if s is at most max bytes of printable ASCII (safe to quote). */
static int mx_ex_printable(const char *s, size_t max)
{
    size_t n = 0;
    for (; s[n] != '\0'; n++) {
        if (n >= max || s[n] < 0x20 || s[n] > 0x7e) {
            return 0;
        }
    }
    return 1;
}

static int mx_ex_is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

int mx_export_normalize(const char *in, char *out, size_t outlen)
{
    size_t len = strlen(in);
    size_t start = 0;
    while (start < len && mx_ex_is_space((unsigned char)in[start])) {
        start++;
    }
    while (len > start && mx_ex_is_space((unsigned char)in[len - 1])) {
        len--;
    }
    if (len - start >= outlen) {
        out[0] = '\0';
        return -1;
    }
    for (size_t i = start; i < len; i++) {
        char ch = in[i];
        out[i - start] = (ch >= 'A' && ch <= 'Z') ? (char)(ch - 'A' + 'a') : ch;
    }
    out[len - start] = '\0';
    return 0;
}

int mx_export_parse_time(const char *text, int64_t *out_ms)
{
    size_t len = strlen(text);
    if (len == 0) {
        return -1;
    }
    if (strspn(text, "0123456789") == len) {
        if (len > 15) {
            return -1;
        }
        *out_ms = strtoll(text, NULL, 10);
        return 0;
    }
    if (pw_time_parse_rfc3339(text, out_ms) == 0) {
        return *out_ms >= 0 ? 0 : -1;
    }
    /* an unescaped '+' of the offset arrives as a space */
    const char *sp = strrchr(text, ' ');
    if (sp == NULL || len >= 64 || strchr(text, ' ') != sp) {
        return -1;
    }
    char fixed[64];
    memcpy(fixed, text, len + 1);
    fixed[sp - text] = '+';
    if (pw_time_parse_rfc3339(fixed, out_ms) != 0) {
        return -1;
    }
    return *out_ms >= 0 ? 0 : -1;
}

void mx_export_query_init(mx_export_query *q, mx_export_kind kind)
{
    memset(q, 0, sizeof(*q));
    q->kind = kind;
    q->format = MX_EXPORT_CSV;
}

/* Whether parameter i applies to exports of kind. */
static int mx_ex_applies(mx_export_kind kind, unsigned i)
{
    if (i == MX_EX_TYPE) {
        return kind == MX_EXPORT_READINGS;
    }
    if (i == MX_EX_SEVERITY) {
        return kind == MX_EXPORT_ALERTS;
    }
    return 1;
}

static void mx_ex_unknown(const mx_export_query *q, const char *name, mx_param_error *e)
{
    const char *allowed = q->kind == MX_EXPORT_READINGS
                              ? "format, device, zone, type, from, to"
                              : "format, device, zone, severity, from, to";
    if (mx_ex_printable(name, 32)) {
        mx_ex_error(e, name, NULL, "unknown parameter (allowed: %s)", allowed);
    } else {
        mx_ex_error(e, "(name)", NULL, "unknown parameter (allowed: %s)", allowed);
    }
}

/* A filter text: strict UTF-8, no control characters, at most max_chars
 * characters, stored normalized into out. */
static int mx_ex_set_text(const char *name, const char *value, size_t max_chars, char *out,
                          size_t outlen, mx_param_error *e)
{
    size_t chars = 0;
    int ctrl = 0;
    if (pw_utf8_scan(value, strlen(value), 0, &chars, &ctrl) != 0) {
        mx_ex_error(e, name, NULL, "must be valid UTF-8");
        return -1;
    }
    if (ctrl) {
        mx_ex_error(e, name, NULL, "must not contain control characters");
        return -1;
    }
    if (chars > max_chars || mx_export_normalize(value, out, outlen) != 0) {
        mx_ex_error(e, name, NULL, "must be at most %zu characters", max_chars);
        return -1;
    }
    return 0;
}

static int mx_ex_set_format(mx_export_query *q, const char *value, mx_param_error *e)
{
    if (strcmp(value, "csv") == 0) {
        q->format = MX_EXPORT_CSV;
        return 0;
    }
    if (strcmp(value, "ndjson") == 0) {
        q->format = MX_EXPORT_NDJSON;
        return 0;
    }
    if (mx_ex_printable(value, 24)) {
        mx_ex_error(e, "format", value, "must be csv or ndjson, got \"%s\"", value);
    } else {
        mx_ex_error(e, "format", NULL, "must be csv or ndjson");
    }
    return -1;
}

static int mx_ex_set_severity(mx_export_query *q, const char *value, mx_param_error *e)
{
    char s[MX_EXPORT_SEVERITY_BYTES + 1];
    Iot__V1__Severity sev;
    if (mx_export_normalize(value, s, sizeof(s)) != 0 ||
        (s[0] != '\0' && pw_severity_parse(s, &sev) != 0)) {
        if (mx_ex_printable(value, 24)) {
            mx_ex_error(e, "severity", value, "must be info, warning or critical, got \"%s\"",
                        value);
        } else {
            mx_ex_error(e, "severity", NULL, "must be info, warning or critical");
        }
        return -1;
    }
    snprintf(q->severity, sizeof(q->severity), "%s", s[0] ? pw_severity_name(sev) : "");
    return 0;
}

static int mx_ex_set_time(const char *name, const char *value, int64_t *out, int *set,
                          mx_param_error *e)
{
    if (value[0] == '\0') {
        return 0; /* empty: the default */
    }
    if (mx_export_parse_time(value, out) != 0) {
        if (mx_ex_printable(value, 40)) {
            mx_ex_error(e, name, value,
                        "must be an RFC 3339 time (2026-12-01T10:00:00Z) or epoch milliseconds, "
                        "got \"%s\"",
                        value);
        } else {
            mx_ex_error(e, name, NULL,
                        "must be an RFC 3339 time (2026-12-01T10:00:00Z) or epoch milliseconds");
        }
        return -1;
    }
    *set = 1;
    return 0;
}

static int mx_ex_lookup(const char *name)
{
    for (unsigned i = 0; i < MX_EX_NPARAMS; i++) {
        if (strcmp(mx_ex_names[i], name) == 0) {
            return (int)i;
        }
    }
    return -1;
}

int mx_export_query_set(mx_export_query *q, unsigned *seen, const char *name, const char *value,
                        mx_param_error *e)
{
    int i = mx_ex_lookup(name);
    if (i < 0 || !mx_ex_applies(q->kind, (unsigned)i)) {
        mx_ex_unknown(q, name, e);
        return -1;
    }
    if (*seen & (1u << i)) {
        mx_ex_error(e, name, NULL, "given more than once");
        return -1;
    }
    *seen |= 1u << i;
    if (value == NULL) {
        mx_ex_error(e, name, NULL, "requires a value");
        return -1;
    }
    switch (i) {
    case MX_EX_FORMAT:
        return mx_ex_set_format(q, value, e);
    case MX_EX_DEVICE:
        return mx_ex_set_text(name, value, PW_MAX_ID_LEN, q->device, sizeof(q->device), e);
    case MX_EX_ZONE:
        return mx_ex_set_text(name, value, PW_MAX_ZONE_LEN, q->zone, sizeof(q->zone), e);
    case MX_EX_TYPE:
        return mx_ex_set_text(name, value, PW_MAX_TYPE_LEN, q->type, sizeof(q->type), e);
    case MX_EX_SEVERITY:
        return mx_ex_set_severity(q, value, e);
    case MX_EX_FROM:
        return mx_ex_set_time(name, value, &q->from_ms, &q->from_set, e);
    default:
        return mx_ex_set_time(name, value, &q->to_ms, &q->to_set, e);
    }
}

int mx_export_query_finish(mx_export_query *q, int64_t now_ms, mx_param_error *e)
{
    if (e->count > 0) {
        return -1;
    }
    if (!q->to_set) {
        q->to_ms = now_ms;
    }
    if (!q->from_set) {
        q->from_ms = q->to_ms - MX_EXPORT_DEFAULT_RANGE_MS;
        q->from_ms = q->from_ms < 0 ? 0 : q->from_ms;
    }
    if (q->from_ms >= q->to_ms) {
        mx_ex_error(e, "from", NULL, "must be before to (the window is [from, to))");
        return -1;
    }
    if (q->to_ms - q->from_ms > MX_EXPORT_MAX_RANGE_MS) {
        mx_ex_error(e, "to", NULL, "the window from..to must be at most 31 days");
        return -1;
    }
    return 0;
}

/* ---- formatting ------------------------------------------------------------ */

void mx_export_buf_free(mx_export_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

static int mx_ex_reserve(mx_export_buf *b, size_t more)
{
    if (b->len + more <= b->cap) {
        return 0;
    }
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more) {
        cap *= 2;
    }
    char *d = realloc(b->data, cap);
    if (d == NULL) {
        return -1;
    }
    b->data = d;
    b->cap = cap;
    return 0;
}

static int mx_ex_put(mx_export_buf *b, const char *s, size_t n)
{
    if (mx_ex_reserve(b, n) != 0) {
        return -1;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    return 0;
}

static int mx_ex_puts(mx_export_buf *b, const char *s)
{
    return mx_ex_put(b, s, strlen(s));
}

static const char *const mx_ex_reading_cols[] = {"ts",       "device_id", "zone",      "type",
                                                 "value",    "unit",      "raw_value", "raw_unit",
                                                 "firmware", "token",     "received"};
static const char *const mx_ex_alert_cols[] = {"ts",      "device_id", "zone",  "severity", "code",
                                               "message", "firmware",  "token", "received"};
#define MX_EX_READING_NCOLS (sizeof(mx_ex_reading_cols) / sizeof(mx_ex_reading_cols[0]))
#define MX_EX_ALERT_NCOLS (sizeof(mx_ex_alert_cols) / sizeof(mx_ex_alert_cols[0]))

int mx_export_header(mx_export_kind kind, mx_export_buf *b)
{
    const char *const *cols = kind == MX_EXPORT_READINGS ? mx_ex_reading_cols : mx_ex_alert_cols;
    size_t n = kind == MX_EXPORT_READINGS ? MX_EX_READING_NCOLS : MX_EX_ALERT_NCOLS;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = (i ? mx_ex_puts(b, ",") : 0) | mx_ex_puts(b, cols[i]);
    }
    return rc | mx_ex_puts(b, "\r\n");
}

int mx_export_csv_field(mx_export_buf *b, const char *text)
{
    if (strpbrk(text, ",\"\r\n") == NULL) {
        return mx_ex_puts(b, text);
    }
    int rc = mx_ex_puts(b, "\"");
    for (const char *p = text; *p != '\0' && rc == 0; p++) {
        rc = *p == '"' ? mx_ex_put(b, "\"\"", 2) : mx_ex_put(b, p, 1);
    }
    return rc | mx_ex_puts(b, "\"");
}

int mx_export_format_double(double v, char *out, size_t outlen)
{
    int prec = 15;
    for (; prec < 17; prec++) {
        snprintf(out, outlen, "%.*g", prec, v);
        if (strtod(out, NULL) == v) {
            return prec;
        }
    }
    snprintf(out, outlen, "%.17g", v);
    return 17;
}

/* One column's value of a stored document. */
typedef enum { MX_COL_STR, MX_COL_TIME, MX_COL_NUM } mx_col_type;

typedef struct {
    const char *name;  /* output name */
    const char *field; /* stored field */
    mx_col_type type;
} mx_col;

static const mx_col mx_ex_reading_fields[] = {
    {"ts", PW_F_TS, MX_COL_TIME},
    {"device_id", PW_F_DEVICE, MX_COL_STR},
    {"zone", PW_F_ZONE, MX_COL_STR},
    {"type", PW_F_TYPE, MX_COL_STR},
    {"value", PW_F_VALUE, MX_COL_NUM},
    {"unit", PW_F_UNIT, MX_COL_STR},
    {"raw_value", PW_F_RAW_VALUE, MX_COL_NUM},
    {"raw_unit", PW_F_RAW_UNIT, MX_COL_STR},
    {"firmware", PW_F_FIRMWARE, MX_COL_STR},
    {"token", PW_F_ID, MX_COL_STR},
    {"received", PW_F_RECEIVED, MX_COL_TIME},
};
static const mx_col mx_ex_alert_fields[] = {
    {"ts", PW_F_TS, MX_COL_TIME},
    {"device_id", PW_F_DEVICE, MX_COL_STR},
    {"zone", PW_F_ZONE, MX_COL_STR},
    {"severity", PW_F_SEVERITY, MX_COL_STR},
    {"code", PW_F_CODE, MX_COL_STR},
    {"message", PW_F_MESSAGE, MX_COL_STR},
    {"firmware", PW_F_FIRMWARE, MX_COL_STR},
    {"token", PW_F_ID, MX_COL_STR},
    {"received", PW_F_RECEIVED, MX_COL_TIME},
};

static const mx_col *mx_ex_fields(mx_export_kind kind, size_t *n)
{
    if (kind == MX_EXPORT_READINGS) {
        *n = sizeof(mx_ex_reading_fields) / sizeof(mx_ex_reading_fields[0]);
        return mx_ex_reading_fields;
    }
    *n = sizeof(mx_ex_alert_fields) / sizeof(mx_ex_alert_fields[0]);
    return mx_ex_alert_fields;
}

/* The column's text ("" when absent); 1 when present. */
static int mx_ex_col_text(const bson_t *doc, const mx_col *col, char *num, size_t numlen,
                          const char **text)
{
    *text = "";
    if (col->type == MX_COL_STR) {
        const char *s = pw_store_str(doc, col->field);
        *text = s ? s : "";
        return s != NULL;
    }
    if (col->type == MX_COL_TIME) {
        int64_t ms = mx_bson_time_ms(doc, col->field, INT64_MIN);
        if (ms == INT64_MIN) {
            return 0;
        }
        pw_time_format_rfc3339(ms, num);
        *text = num;
        return 1;
    }
    if (!mx_bson_has_number(doc, col->field)) {
        return 0;
    }
    mx_export_format_double(mx_bson_double(doc, col->field, 0), num, numlen);
    *text = num;
    return 1;
}

static int mx_ex_csv_row(const mx_col *cols, size_t n, const bson_t *doc, mx_export_buf *b)
{
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        char num[PW_RFC3339_LEN + 8];
        const char *text;
        mx_ex_col_text(doc, &cols[i], num, sizeof(num), &text);
        rc = (i ? mx_ex_puts(b, ",") : 0) | mx_export_csv_field(b, text);
    }
    return rc | mx_ex_puts(b, "\r\n");
}

static json_t *mx_ex_json_value(const bson_t *doc, const mx_col *col, int *prec)
{
    char num[PW_RFC3339_LEN + 8];
    const char *text;
    if (!mx_ex_col_text(doc, col, num, sizeof(num), &text)) {
        return json_null();
    }
    if (col->type == MX_COL_NUM) {
        double v = mx_bson_double(doc, col->field, 0);
        int p = mx_export_format_double(v, num, sizeof(num));
        *prec = p > *prec ? p : *prec;
        return json_real(v);
    }
    json_t *s = json_string(text); /* stored text is UTF-8; anything else is no text */
    return s ? s : json_null();
}

static int mx_ex_ndjson_row(const mx_col *cols, size_t n, const bson_t *doc, mx_export_buf *b)
{
    json_t *obj = json_object();
    int prec = 1;
    for (size_t i = 0; obj != NULL && i < n; i++) {
        json_object_set_new(obj, cols[i].name, mx_ex_json_value(doc, &cols[i], &prec));
    }
    if (obj == NULL) {
        return -1;
    }
    size_t need =
        json_dumpb(obj, NULL, 0, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(prec));
    int rc = need > 0 ? mx_ex_reserve(b, need + 1) : -1;
    if (rc == 0) {
        json_dumpb(obj, b->data + b->len, need,
                   JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(prec));
        b->len += need;
        rc = mx_ex_puts(b, "\n");
    }
    json_decref(obj);
    return rc;
}

int mx_export_row(const mx_export_query *q, const bson_t *doc, mx_export_buf *b)
{
    size_t n;
    const mx_col *cols = mx_ex_fields(q->kind, &n);
    return q->format == MX_EXPORT_CSV ? mx_ex_csv_row(cols, n, doc, b)
                                      : mx_ex_ndjson_row(cols, n, doc, b);
}

/* "20261201T100000Z" of ms (filename-safe). */
static void mx_ex_compact_time(int64_t ms, char *out, size_t outlen)
{
    char t[PW_RFC3339_LEN];
    pw_time_format_rfc3339(ms, t);
    size_t j = 0;
    for (size_t i = 0; t[i] != '\0' && t[i] != '.' && j + 1 < outlen; i++) {
        if (t[i] != '-' && t[i] != ':') {
            out[j++] = t[i];
        }
    }
    if (j + 1 < outlen) {
        out[j++] = 'Z';
    }
    out[j] = '\0';
}

static int mx_ex_safe_char(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '-' || ch == '.' || ch == '_';
}

void mx_export_disposition(const mx_export_query *q, char *out, size_t outlen)
{
    const char *label = q->zone[0] ? q->zone : q->device[0] ? q->device : "all";
    char from[24], to[24];
    mx_ex_compact_time(q->from_ms, from, sizeof(from));
    mx_ex_compact_time(q->to_ms, to, sizeof(to));
    const char *kind = q->kind == MX_EXPORT_READINGS ? "readings" : "alerts";
    const char *ext = q->format == MX_EXPORT_CSV ? "csv" : "ndjson";
    char name[PW_MAX_ID_BYTES * 3 + 96];
    snprintf(name, sizeof(name), "plantwatch-%s-%s-%s-%s.%s", kind, label, from, to, ext);

    char ascii[sizeof(name)], encoded[sizeof(name) * 3];
    size_t a = 0, u = 0;
    int non_ascii = 0;
    for (const unsigned char *p = (const unsigned char *)name; *p != '\0'; p++) {
        non_ascii |= *p >= 0x80;
        ascii[a++] = mx_ex_safe_char(*p) ? (char)*p : '_';
        if (mx_ex_safe_char(*p)) {
            encoded[u++] = (char)*p;
        } else {
            u += (size_t)snprintf(encoded + u, 4, "%%%02X", *p);
        }
    }
    ascii[a] = '\0';
    encoded[u] = '\0';
    if (non_ascii) {
        snprintf(out, outlen, "attachment; filename=\"%s\"; filename*=UTF-8''%s", ascii, encoded);
    } else {
        snprintf(out, outlen, "attachment; filename=\"%s\"", ascii);
    }
}

void mx_export_filter(const mx_export_query *q, int64_t hour_ms, bson_t *filter)
{
    bson_init(filter);
    BSON_APPEND_DATE_TIME(filter, PW_F_HOUR, hour_ms);
    if (q->device[0]) {
        BSON_APPEND_UTF8(filter, PW_F_DEVICE, q->device);
    }
    if (q->zone[0]) {
        BSON_APPEND_UTF8(filter, PW_F_ZONE, q->zone);
    }
    if (q->kind == MX_EXPORT_READINGS && q->type[0]) {
        BSON_APPEND_UTF8(filter, PW_F_TYPE, q->type);
    }
    if (q->kind == MX_EXPORT_ALERTS && q->severity[0]) {
        BSON_APPEND_UTF8(filter, PW_F_SEVERITY, q->severity);
    }
}

/* ---- the stream ---------------------------------------------------------------- */

typedef struct {
    mx_exporter *x;
    mx_export_query q;
    mongoc_client_t *client;
    mongoc_collection_t *coll;
    mongoc_cursor_t *cur;
    int64_t hour_ms; /* next hour to open */
    mx_export_buf out;
    size_t off; /* bytes of out already handed to MHD */
    int done;   /* every hour read */
    int failed; /* a store error: end without the terminating chunk */
    uint64_t rows;
} mx_ex_stream;

static void mx_ex_stream_close_cursor(mx_ex_stream *st)
{
    if (st->cur != NULL) {
        mongoc_cursor_destroy(st->cur);
        st->cur = NULL;
    }
}

static void mx_ex_stream_fail(mx_ex_stream *st, const char *why)
{
    pw_log_fields(PW_LOG_ERROR, "export_failed",
                  json_pack("{s:s, s:I}", "export",
                            st->q.kind == MX_EXPORT_READINGS ? "readings" : "alerts", "rows",
                            (json_int_t)st->rows),
                  "export ended early after %llu rows: %s", (unsigned long long)st->rows, why);
    st->failed = 1;
    if (st->q.format == MX_EXPORT_NDJSON) {
        json_t *line = json_pack("{s:{s:s, s:s}}", "error", "code", "unavailable", "message", why);
        char *text = line ? json_dumps(line, JSON_COMPACT) : NULL;
        if (text != NULL) {
            mx_ex_puts(&st->out, text);
            mx_ex_puts(&st->out, "\n");
        }
        free(text);
        json_decref(line);
    }
}

static void mx_ex_stream_open(mx_ex_stream *st)
{
    bson_t filter;
    mx_export_filter(&st->q, st->hour_ms, &filter);
    mx_store_check(st->x->store, st->coll, &filter,
                   st->q.kind == MX_EXPORT_READINGS ? "export readings" : "export alerts", 0);
    bson_t *opts =
        BCON_NEW("sort", "{", PW_F_TS, BCON_INT32(1), PW_F_ID, BCON_INT32(1), "}", "batchSize",
                 BCON_INT32(MX_EXPORT_BATCH), "maxTimeMS", BCON_INT64(st->x->query_timeout_ms));
    st->cur = mongoc_collection_find_with_opts(st->coll, &filter, opts, NULL);
    bson_destroy(opts);
    bson_destroy(&filter);
    st->hour_ms += PW_HOUR_MS;
}

/* Reads documents until about MX_EXPORT_CHUNK bytes are ready, the window is
 * read, or the store fails. */
static void mx_ex_stream_fill(mx_ex_stream *st)
{
    while (st->out.len < MX_EXPORT_CHUNK && !st->done && !st->failed) {
        if (st->cur == NULL) {
            if (st->hour_ms >= st->q.to_ms) {
                st->done = 1;
                break;
            }
            mx_ex_stream_open(st);
        }
        const bson_t *doc;
        while (st->out.len < MX_EXPORT_CHUNK && mongoc_cursor_next(st->cur, &doc)) {
            int64_t ts = mx_bson_time_ms(doc, PW_F_TS, INT64_MIN);
            if (ts < st->q.from_ms || ts >= st->q.to_ms) {
                continue;
            }
            if (mx_export_row(&st->q, doc, &st->out) != 0) {
                mx_ex_stream_fail(st, "out of memory");
                return;
            }
            st->rows++;
        }
        bson_error_t err;
        if (mongoc_cursor_error(st->cur, &err)) {
            char why[600];
            snprintf(why, sizeof(why), "store query failed: %s", err.message);
            mx_ex_stream_close_cursor(st);
            mx_ex_stream_fail(st, why);
            return;
        }
        if (!mongoc_cursor_more(st->cur)) {
            mx_ex_stream_close_cursor(st);
        }
    }
}

static ssize_t mx_ex_stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    mx_ex_stream *st = cls;
    while (st->off == st->out.len) {
        st->off = st->out.len = 0;
        if (st->failed) {
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        if (st->done) {
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
        mx_ex_stream_fill(st);
    }
    size_t n = st->out.len - st->off;
    n = n < max ? n : max;
    memcpy(buf, st->out.data + st->off, n);
    st->off += n;
    return (ssize_t)n;
}

static void mx_ex_stream_free(void *cls)
{
    mx_ex_stream *st = cls;
    mx_ex_stream_close_cursor(st);
    if (st->coll != NULL) {
        mongoc_collection_destroy(st->coll);
    }
    if (st->client != NULL) {
        mongoc_client_destroy(st->client);
    }
    if (st->done) {
        pw_log(PW_LOG_INFO, "export_done", "export of %llu rows complete",
               (unsigned long long)st->rows);
    }
    mx_export_buf_free(&st->out);
    atomic_fetch_sub(&st->x->running, 1);
    free(st);
}

/* ---- serving ------------------------------------------------------------------ */

mx_exporter *mx_exporter_new(mx_store *store, unsigned max_streams, long query_timeout_ms)
{
    mx_exporter *x = calloc(1, sizeof(*x));
    if (x == NULL) {
        return NULL;
    }
    x->store = store;
    x->max_streams = max_streams ? max_streams : 1;
    x->query_timeout_ms = query_timeout_ms > 0 ? query_timeout_ms : 30000;
    atomic_init(&x->running, 0);
    return x;
}

void mx_exporter_free(mx_exporter *x)
{
    free(x);
}

unsigned mx_exporter_running(mx_exporter *x)
{
    return atomic_load(&x->running);
}

/* Takes an export slot: 0, or -1 when max_streams run already. */
static int mx_ex_enter(mx_exporter *x)
{
    unsigned n = atomic_load(&x->running);
    do {
        if (n >= x->max_streams) {
            return -1;
        }
    } while (!atomic_compare_exchange_weak(&x->running, &n, n + 1));
    return 0;
}

typedef struct {
    mx_export_query *q;
    unsigned seen;
    mx_param_error *err;
} mx_ex_args;

static enum MHD_Result mx_ex_collect(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *value)
{
    (void)kind;
    mx_ex_args *a = cls;
    mx_export_query_set(a->q, &a->seen, key, value, a->err);
    return MHD_YES;
}

/* A store client of the export's own, checked with a ping so an unreachable
 * store is a 503 before the answer starts. NULL with err. */
static mongoc_client_t *mx_ex_client(mx_exporter *x, char *err, size_t errlen)
{
    int sock = (int)x->query_timeout_ms + 1000;
    mongoc_uri_t *uri = pw_store_uri_from_env(5000, sock, err, errlen);
    if (uri == NULL) {
        return NULL;
    }
    mongoc_uri_set_appname(uri, "plantwatch-metrics-export");
    bson_error_t e;
    mongoc_client_t *c = mongoc_client_new_from_uri_with_error(uri, &e);
    mongoc_uri_destroy(uri);
    if (c == NULL) {
        snprintf(err, errlen, "store client failed: %s", e.message);
        return NULL;
    }
    mongoc_client_set_error_api(c, MONGOC_ERROR_API_VERSION_2);
    bson_t *ping = BCON_NEW("ping", BCON_INT32(1));
    int ok = mongoc_client_command_simple(c, "admin", ping, NULL, NULL, &e);
    bson_destroy(ping);
    if (!ok) {
        snprintf(err, errlen, "store query failed: %s", e.message);
        mongoc_client_destroy(c);
        return NULL;
    }
    return c;
}

static enum MHD_Result mx_ex_send_invalid(struct MHD_Connection *c, mx_param_error *perr)
{
    char msg[600];
    snprintf(msg, sizeof(msg), "invalid parameter: %s", perr->message);
    json_t *details = json_incref(perr->details);
    mx_param_error_free(perr);
    return pw_http_send_error(c, MHD_HTTP_BAD_REQUEST, "invalid_parameter", msg, details);
}

static enum MHD_Result mx_ex_start(mx_exporter *x, struct MHD_Connection *c,
                                   const mx_export_query *q)
{
    if (mx_ex_enter(x) != 0) {
        char msg[160];
        snprintf(msg, sizeof(msg),
                 "busy: all %u exports are running (PW_METRICS_EXPORTS), retry later",
                 x->max_streams);
        return pw_http_send_unavailable(c, 5, msg);
    }
    char err[600];
    mx_ex_stream *st = calloc(1, sizeof(*st));
    mongoc_client_t *client = st ? mx_ex_client(x, err, sizeof(err)) : NULL;
    if (client == NULL) {
        free(st);
        atomic_fetch_sub(&x->running, 1);
        return pw_http_send_unavailable(c, 5, st ? err : "out of memory");
    }
    st->x = x;
    st->q = *q;
    st->client = client;
    st->coll = mx_store_collection(
        x->store, client, q->kind == MX_EXPORT_READINGS ? PW_COLL_TELEMETRY : PW_COLL_ALERTS);
    st->hour_ms = pw_time_hour_start(q->from_ms);
    if (q->format == MX_EXPORT_CSV && mx_export_header(q->kind, &st->out) != 0) {
        st->failed = 1;
    }
    struct MHD_Response *r = MHD_create_response_from_callback(
        MHD_SIZE_UNKNOWN, MX_EXPORT_CHUNK, mx_ex_stream_read, st, mx_ex_stream_free);
    if (r == NULL) {
        mx_ex_stream_free(st);
        return MHD_NO;
    }
    char disp[1024];
    mx_export_disposition(q, disp, sizeof(disp));
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                            q->format == MX_EXPORT_CSV ? "text/csv; charset=utf-8"
                                                       : "application/x-ndjson");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_DISPOSITION, disp);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    enum MHD_Result rc = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return rc;
}

int mx_export_serve(mx_exporter *x, struct MHD_Connection *c, const char *url,
                    enum MHD_Result *result)
{
    if (x == NULL || strncmp(url, MX_EXPORT_PREFIX, strlen(MX_EXPORT_PREFIX)) != 0) {
        return 0;
    }
    const char *what = url + strlen(MX_EXPORT_PREFIX);
    mx_export_kind kind;
    if (strcmp(what, "readings") == 0) {
        kind = MX_EXPORT_READINGS;
    } else if (strcmp(what, "alerts") == 0) {
        kind = MX_EXPORT_ALERTS;
    } else {
        return 0;
    }
    mx_export_query q;
    mx_param_error perr;
    mx_param_error_init(&perr);
    mx_export_query_init(&q, kind);
    mx_ex_args a = {&q, 0, &perr};
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, mx_ex_collect, &a);
    if (mx_export_query_finish(&q, pw_now_ms(), &perr) != 0) {
        *result = mx_ex_send_invalid(c, &perr);
        return 1;
    }
    mx_param_error_free(&perr);
    *result = mx_ex_start(x, c, &q);
    return 1;
}
