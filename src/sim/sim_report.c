/* sim_report: analytics views as text tables (see sim_report.h). */
#include "sim_report.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "pw_time.h"
#include "sim_table.h"

#define PW_SIM_REPORT_BODY_MAX (4u << 20)

/* ---- defensive JSON access ---- */

/* Field by its proto name, else by the lowerCamelCase form protobuf's JSON mapping uses. */
static const json_t *pw_sim_field(const json_t *obj, const char *name)
{
    const json_t *v = json_object_get(obj, name);
    if (v || !strchr(name, '_')) {
        return v;
    }
    char camel[64];
    size_t j = 0;
    for (size_t i = 0; name[i] && j + 1 < sizeof camel; i++) {
        if (name[i] == '_' && name[i + 1]) {
            i++;
            camel[j++] = (char)(name[i] >= 'a' && name[i] <= 'z' ? name[i] - 32 : name[i]);
        } else {
            camel[j++] = name[i];
        }
    }
    camel[j] = '\0';
    return json_object_get(obj, camel);
}

/* Number from an integer, a real or a numeric string; absent = 0. -1 when malformed. */
static int pw_sim_num(const json_t *obj, const char *name, double *out)
{
    const json_t *v = pw_sim_field(obj, name);
    *out = 0;
    if (!v || json_is_null(v)) {
        return 0;
    }
    if (json_is_number(v)) {
        *out = json_number_value(v);
        return 0;
    }
    if (json_is_string(v)) {
        char *end;
        const char *s = json_string_value(v);
        double d = strtod(s, &end);
        if (end != s && *end == '\0') {
            *out = d;
            return 0;
        }
    }
    return -1;
}

static const char *pw_sim_str(const json_t *obj, const char *name)
{
    const char *s = json_string_value(pw_sim_field(obj, name));
    return s ? s : "";
}

static int pw_sim_bool(const json_t *obj, const char *name)
{
    const json_t *v = pw_sim_field(obj, name);
    return json_is_true(v);
}

/* Repeated field: absent = empty; NULL when present but not an array. */
static const json_t *pw_sim_list(const json_t *obj, const char *name, int *ok)
{
    const json_t *v = pw_sim_field(obj, name);
    *ok = v == NULL || json_is_array(v) || json_is_null(v);
    return json_is_array(v) ? v : NULL;
}

static int pw_sim_why(char *why, size_t whylen, const char *fmt, const char *what)
{
    snprintf(why, whylen, fmt, what);
    return -1;
}

/* Reads the named numeric fields of item into vals; -1 naming the bad one. */
static int pw_sim_nums(const json_t *item, const char *const *names, double *vals, size_t n,
                       char *why, size_t whylen)
{
    for (size_t i = 0; i < n; i++) {
        if (pw_sim_num(item, names[i], &vals[i]) != 0) {
            return pw_sim_why(why, whylen, "field '%s' is not a number", names[i]);
        }
    }
    return 0;
}

static void pw_sim_fmt_count(double v, char *out, size_t n)
{
    snprintf(out, n, "%.0f", v);
}

/* "2026-11-25T10:00:00Z" (seconds), or "-" for 0. */
static void pw_sim_fmt_time(double ms, char *out, size_t n)
{
    if (ms <= 0) {
        snprintf(out, n, "-");
        return;
    }
    char ts[PW_RFC3339_LEN];
    pw_time_format_rfc3339((int64_t)ms, ts);
    snprintf(out, n, "%.19sZ", ts);
}

static void pw_sim_fmt_duration(double s, char *out, size_t n)
{
    long v = s < 0 ? 0 : (long)s;
    if (v >= 86400) {
        snprintf(out, n, "%ldd %ldh", v / 86400, v % 86400 / 3600);
    } else if (v >= 3600) {
        snprintf(out, n, "%ldh %ldm", v / 3600, v % 3600 / 60);
    } else if (v >= 60) {
        snprintf(out, n, "%ldm %lds", v / 60, v % 60);
    } else {
        snprintf(out, n, "%lds", v);
    }
}

static void pw_sim_print_table(pw_sim_table *t, FILE *out, const char *empty)
{
    if (t->nrows == 0) {
        fprintf(out, "  %s\n", empty);
    } else {
        pw_sim_table_print(t, out, "  ");
    }
    pw_sim_table_free(t);
}

/* "  window <from> .. <to>" when the view states its span. */
static void pw_sim_print_window(const json_t *doc, FILE *out)
{
    double from, to;
    if (pw_sim_num(doc, "from_ms", &from) != 0 || pw_sim_num(doc, "to_ms", &to) != 0 || from <= 0 ||
        to <= 0) {
        return;
    }
    char a[40], b[40];
    pw_sim_fmt_time(from, a, sizeof a);
    pw_sim_fmt_time(to, b, sizeof b);
    fprintf(out, "  window %s .. %s\n", a, b);
}

/* ---- the five views ---- */

static int pw_sim_render_temperature(const json_t *doc, FILE *out, char *why, size_t whylen)
{
    static const char *const heads[] = {"zone", ">avg C", ">min C", ">max C", ">readings"};
    static const char *const names[] = {"avg_c", "min_c", "max_c", "count"};
    int ok;
    const json_t *zones = pw_sim_list(doc, "zones", &ok);
    if (!ok) {
        return pw_sim_why(why, whylen, "field '%s' is not a list", "zones");
    }
    pw_sim_print_window(doc, out);
    pw_sim_table t;
    pw_sim_table_init(&t, 5, heads);
    size_t i;
    const json_t *z;
    json_array_foreach(zones, i, z)
    {
        double v[4];
        if (pw_sim_nums(z, names, v, 4, why, whylen) != 0) {
            pw_sim_table_free(&t);
            return -1;
        }
        char c[4][32];
        snprintf(c[0], sizeof c[0], "%.1f", v[0]);
        snprintf(c[1], sizeof c[1], "%.1f", v[1]);
        snprintf(c[2], sizeof c[2], "%.1f", v[2]);
        pw_sim_fmt_count(v[3], c[3], sizeof c[3]);
        const char *row[] = {pw_sim_str(z, "zone"), c[0], c[1], c[2], c[3]};
        pw_sim_table_add(&t, row);
    }
    int rows = (int)t.nrows;
    pw_sim_print_table(&t, out, "(no temperature readings in the window yet)");
    return rows;
}

static int pw_sim_render_counts(const json_t *doc, const char *list, const char *key,
                                const char *head, FILE *out, const char *empty, char *why,
                                size_t whylen)
{
    const char *heads[] = {head, ">count"};
    static const char *const names[] = {"count"};
    int ok;
    const json_t *items = pw_sim_list(doc, list, &ok);
    if (!ok) {
        return pw_sim_why(why, whylen, "field '%s' is not a list", list);
    }
    pw_sim_table t;
    pw_sim_table_init(&t, 2, heads);
    size_t i;
    const json_t *it;
    json_array_foreach(items, i, it)
    {
        double v;
        if (pw_sim_nums(it, names, &v, 1, why, whylen) != 0) {
            pw_sim_table_free(&t);
            return -1;
        }
        char c[32];
        pw_sim_fmt_count(v, c, sizeof c);
        const char *row[] = {pw_sim_str(it, key), c};
        pw_sim_table_add(&t, row);
    }
    int rows = (int)t.nrows;
    pw_sim_print_table(&t, out, empty);
    return rows;
}

static int pw_sim_render_alerts(const json_t *doc, FILE *out, char *why, size_t whylen)
{
    double total;
    if (pw_sim_num(doc, "total", &total) != 0) {
        return pw_sim_why(why, whylen, "field '%s' is not a number", "total");
    }
    /* Render into a buffer first so a malformed second list prints nothing half-way. */
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    if (!mem) {
        return pw_sim_why(why, whylen, "%s", "out of memory");
    }
    pw_sim_print_window(doc, mem);
    fprintf(mem, "  total %.0f alerts\n", total);
    int a = pw_sim_render_counts(doc, "by_severity", "severity", "severity", mem,
                                 "(no alerts in the window)", why, whylen);
    int b = a < 0 ? -1
                  : pw_sim_render_counts(doc, "top_codes", "code", "top codes", mem,
                                         "(no alert codes)", why, whylen);
    fclose(mem);
    if (b >= 0) {
        fputs(buf, out);
    }
    free(buf);
    return b < 0 ? -1 : a + b;
}

static int pw_sim_render_activity(const json_t *doc, FILE *out, char *why, size_t whylen)
{
    static const char *const heads[] = {"day", ">readings", ">alerts", ">active devices"};
    static const char *const names[] = {"readings", "alerts", "active_devices"};
    int ok;
    const json_t *days = pw_sim_list(doc, "days", &ok);
    if (!ok) {
        return pw_sim_why(why, whylen, "field '%s' is not a list", "days");
    }
    pw_sim_table t;
    pw_sim_table_init(&t, 4, heads);
    size_t i;
    const json_t *d;
    json_array_foreach(days, i, d)
    {
        double v[3];
        if (pw_sim_nums(d, names, v, 3, why, whylen) != 0) {
            pw_sim_table_free(&t);
            return -1;
        }
        char c[3][32];
        for (int k = 0; k < 3; k++) {
            pw_sim_fmt_count(v[k], c[k], sizeof c[k]);
        }
        const char *row[] = {pw_sim_str(d, "day"), c[0], c[1], c[2]};
        pw_sim_table_add(&t, row);
    }
    int rows = (int)t.nrows;
    pw_sim_print_table(&t, out, "(no days)");
    return rows;
}

static int pw_sim_render_firmware(const json_t *doc, FILE *out, char *why, size_t whylen)
{
    static const char *const heads[] = {"firmware", ">devices", ">share", "last seen", "status"};
    static const char *const names[] = {"devices", "share", "last_seen_ms"};
    static const char *const totals[] = {"total_devices", "outdated_devices"};
    double tot[2];
    int ok;
    if (pw_sim_nums(doc, totals, tot, 2, why, whylen) != 0) {
        return -1;
    }
    const json_t *versions = pw_sim_list(doc, "versions", &ok);
    if (!ok) {
        return pw_sim_why(why, whylen, "field '%s' is not a list", "versions");
    }
    const char *newest = pw_sim_str(doc, "newest");
    fprintf(out, "  newest %s; %.0f devices, %.0f outdated\n", newest[0] ? newest : "-", tot[0],
            tot[1]);
    pw_sim_table t;
    pw_sim_table_init(&t, 5, heads);
    size_t i;
    const json_t *fw;
    json_array_foreach(versions, i, fw)
    {
        double v[3];
        if (pw_sim_nums(fw, names, v, 3, why, whylen) != 0) {
            pw_sim_table_free(&t);
            return -1;
        }
        char c[3][40];
        pw_sim_fmt_count(v[0], c[0], sizeof c[0]);
        snprintf(c[1], sizeof c[1], "%.1f%%", v[1] * 100.0);
        pw_sim_fmt_time(v[2], c[2], sizeof c[2]);
        const char *row[] = {pw_sim_str(fw, "firmware"), c[0], c[1], c[2],
                             pw_sim_bool(fw, "outdated") ? "outdated" : "current"};
        pw_sim_table_add(&t, row);
    }
    int rows = (int)t.nrows;
    pw_sim_print_table(&t, out, "(no devices seen)");
    return rows;
}

static int pw_sim_render_health(const json_t *doc, FILE *out, char *why, size_t whylen)
{
    static const char *const heads[] = {"device", "zone", "last seen", ">silent for"};
    static const char *const names[] = {"last_seen_ms", "silent_seconds"};
    static const char *const totals[] = {"total_devices", "silent_devices"};
    double tot[2];
    int ok;
    if (pw_sim_nums(doc, totals, tot, 2, why, whylen) != 0) {
        return -1;
    }
    const json_t *silent = pw_sim_list(doc, "silent", &ok);
    if (!ok) {
        return pw_sim_why(why, whylen, "field '%s' is not a list", "silent");
    }
    fprintf(out, "  %.0f of %.0f devices silent\n", tot[1], tot[0]);
    pw_sim_table t;
    pw_sim_table_init(&t, 4, heads);
    size_t i;
    const json_t *d;
    json_array_foreach(silent, i, d)
    {
        double v[2];
        if (pw_sim_nums(d, names, v, 2, why, whylen) != 0) {
            pw_sim_table_free(&t);
            return -1;
        }
        char c[2][40];
        pw_sim_fmt_time(v[0], c[0], sizeof c[0]);
        pw_sim_fmt_duration(v[1], c[1], sizeof c[1]);
        const char *row[] = {pw_sim_str(d, "device_id"), pw_sim_str(d, "zone"), c[0], c[1]};
        pw_sim_table_add(&t, row);
    }
    int rows = (int)t.nrows;
    pw_sim_print_table(&t, out,
                       tot[0] > 0 ? "(every device reported recently)" : "(no devices seen yet)");
    return rows;
}

const pw_sim_view pw_sim_views[PW_SIM_VIEW_COUNT] = {
    {"Temperature by zone", "/v1/metrics/temperature/zones", pw_sim_render_temperature},
    {"Alert breakdown", "/v1/metrics/alerts/breakdown", pw_sim_render_alerts},
    {"Activity, last 7 days", "/v1/metrics/activity/trend", pw_sim_render_activity},
    {"Firmware status", "/v1/metrics/firmware/status", pw_sim_render_firmware},
    {"Device health", "/v1/metrics/devices/health", pw_sim_render_health},
};

/* ---- fetching ---- */

typedef struct {
    char *data;
    size_t len;
    int overflow;
} pw_sim_buf;

static size_t pw_sim_buf_write(char *data, size_t size, size_t nmemb, void *userp)
{
    pw_sim_buf *b = userp;
    size_t n = size * nmemb;
    if (b->len + n > PW_SIM_REPORT_BODY_MAX) {
        b->overflow = 1;
        return 0;
    }
    char *nd = realloc(b->data, b->len + n + 1);
    if (!nd) {
        return 0;
    }
    b->data = nd;
    memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

/* GET url; returns the HTTP status (0 on a transport error, err set) and the body. */
static long pw_sim_get(const char *url, double timeout, pw_sim_buf *body, char *err, size_t n)
{
    char errbuf[CURL_ERROR_SIZE] = "";
    long status = 0;
    CURL *e = curl_easy_init();
    if (!e) {
        snprintf(err, n, "curl_easy_init failed");
        return 0;
    }
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, pw_sim_buf_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, body);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(timeout * 1000));
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "plantwatch-sim/" PW_VERSION);
    CURLcode rc = curl_easy_perform(e);
    if (rc == CURLE_OK) {
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    } else if (body->overflow) {
        snprintf(err, n, "response larger than %u bytes", PW_SIM_REPORT_BODY_MAX);
    } else {
        snprintf(err, n, "%s", errbuf[0] ? errbuf : curl_easy_strerror(rc));
    }
    curl_easy_cleanup(e);
    return status;
}

/* Error text of a non-2xx answer: error.message, message, or the status alone. */
static void pw_sim_http_reason(long status, const char *body, char *out, size_t n)
{
    json_t *doc = body ? json_loads(body, 0, NULL) : NULL;
    const char *msg = json_string_value(json_object_get(json_object_get(doc, "error"), "message"));
    if (!msg) {
        msg = json_string_value(json_object_get(doc, "message"));
    }
    if (msg) {
        snprintf(out, n, "HTTP %ld: %s", status, msg);
    } else {
        snprintf(out, n, "HTTP %ld", status);
    }
    json_decref(doc);
}

int pw_sim_report_render(const pw_sim_view *v, long status, const char *body, const char *fetch_err,
                         FILE *out)
{
    char why[256] = "";
    int rows = -1;
    json_t *doc = NULL;
    fprintf(out, "%s\n", v->title);
    if (status == 0) {
        snprintf(why, sizeof why, "%s", fetch_err && fetch_err[0] ? fetch_err : "no answer");
    } else if (status < 200 || status >= 300) {
        pw_sim_http_reason(status, body, why, sizeof why);
    } else {
        json_error_t jerr;
        doc = body ? json_loads(body, 0, &jerr) : NULL;
        if (!doc) {
            snprintf(why, sizeof why, "response is not JSON (%s)", body ? jerr.text : "empty");
        } else if (!json_is_object(doc)) {
            snprintf(why, sizeof why, "response is not a JSON object");
        } else {
            rows = v->render(doc, out, why, sizeof why);
        }
    }
    json_decref(doc);
    if (rows < 0) {
        fprintf(out, "  unavailable: %s (GET %s)\n", why, v->path);
    }
    fputc('\n', out);
    return rows;
}

int pw_sim_report(const pw_sim_report_opts *o, FILE *out)
{
    int exit_code = 0;
    for (int i = 0; i < PW_SIM_VIEW_COUNT; i++) {
        const pw_sim_view *v = &pw_sim_views[i];
        char url[PW_SIM_URL_MAX + 64], err[CURL_ERROR_SIZE + 64] = "";
        pw_sim_buf body = {0};
        snprintf(url, sizeof url, "%s%s", o->url, v->path);
        long status = pw_sim_get(url, o->timeout, &body, err, sizeof err);
        int rows = pw_sim_report_render(v, status, body.data, err, out);
        free(body.data);
        if (i == PW_SIM_VIEW_TEMPERATURE && (rows < 0 || (o->require_data && rows == 0))) {
            exit_code = 1;
        }
    }
    fflush(out);
    return exit_code;
}
