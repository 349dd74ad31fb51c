/* pw_validate: owns the rules for sensor input. Readings and alerts arriving as
 * JSON (REST) or protobuf (gRPC, Kafka) pass the same field checks: required
 * non-blank strings within length limits, valid UTF-8 without control
 * characters, a finite bounded value, a known severity and a timestamp inside
 * the accepted window. Every error of an item is collected, not only the first. */
#include "pw_validate.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pw_time.h"

#define PW_MAX_ABS_VALUE 1e15

/* ---- error list ---------------------------------------------------------- */

void pw_errors_init(pw_errors *e)
{
    e->items = NULL;
    e->len = 0;
    e->cap = 0;
}

void pw_errors_free(pw_errors *e)
{
    free(e->items);
    pw_errors_init(e);
}

/* A text cut to fit a buffer may end inside a UTF-8 sequence: drop the
 * incomplete tail so the text stays valid in JSON. */
void pw_utf8_trim_tail(char *s)
{
    size_t n = strlen(s);
    size_t start = n;
    while (start > 0 && ((unsigned char)s[start - 1] & 0xc0) == 0x80) {
        start--;
    }
    if (start == 0 || (unsigned char)s[start - 1] < 0xc0) {
        return; /* ends in ASCII or stray continuation bytes: leave as is */
    }
    unsigned lead = (unsigned char)s[start - 1];
    size_t need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : 2;
    if (n - (start - 1) < need) {
        s[start - 1] = '\0';
    }
}

void pw_errors_add(pw_errors *e, int index, const char *field, const char *fmt, ...)
{
    if (e == NULL) {
        return;
    }
    if (e->len == e->cap) {
        size_t ncap = e->cap ? e->cap * 2 : 8;
        pw_field_error *n = realloc(e->items, ncap * sizeof *n);
        if (n == NULL) {
            return;
        }
        e->items = n;
        e->cap = ncap;
    }
    pw_field_error *it = &e->items[e->len++];
    it->index = index;
    snprintf(it->field, sizeof it->field, "%s", field ? field : "");
    pw_utf8_trim_tail(it->field);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(it->message, sizeof it->message, fmt, ap);
    va_end(ap);
}

json_t *pw_errors_to_json(const pw_errors *e)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr != NULL && e != NULL && i < e->len; i++) {
        const pw_field_error *it = &e->items[i];
        json_t *o = json_object();
        if (it->index >= 0) {
            json_object_set_new(o, "index", json_integer(it->index));
        }
        /* field names and messages are built from ASCII or validated UTF-8;
         * an unknown key may be cut mid-character, so fall back safely. */
        json_t *f = json_string(it->field);
        json_object_set_new(o, "field", f ? f : json_string("?"));
        json_t *m = json_string(it->message);
        json_object_set_new(o, "message", m ? m : json_string("invalid"));
        json_array_append_new(arr, o);
    }
    return arr;
}

void pw_errors_summary(const pw_errors *e, char *out, size_t n)
{
    if (n == 0) {
        return;
    }
    out[0] = '\0';
    size_t off = 0;
    for (size_t i = 0; e != NULL && i < e->len && off + 1 < n; i++) {
        const pw_field_error *it = &e->items[i];
        const char *sep = i ? "; " : "";
        int w;
        if (it->index >= 0) {
            w = snprintf(out + off, n - off, "%sitems[%d]%s%s: %s", sep, it->index,
                         it->field[0] ? "." : "", it->field, it->message);
        } else {
            w = snprintf(out + off, n - off, "%s%s: %s", sep, it->field[0] ? it->field : "body",
                         it->message);
        }
        if (w < 0) {
            break;
        }
        off += (size_t)w;
    }
    if (off >= n) {
        out[n - 1] = '\0';
        pw_utf8_trim_tail(out);
    }
}

/* ---- strings ------------------------------------------------------------- */

enum {
    PW_STR_REQUIRED = 1,  /* must be present and not blank */
    PW_STR_MULTILINE = 2, /* \t \n \r allowed (alert messages) */
};

/* Decodes strict UTF-8 (no overlongs, surrogates or values above U+10FFFF),
 * counting code points and control characters (C0, DEL, C1). -1 if invalid. */
static int pw_utf8_decode(const unsigned char *s, size_t len, unsigned flags, size_t *ncp,
                          int *has_ctrl)
{
    size_t i = 0, count = 0;
    int ctrl = 0;
    while (i < len) {
        unsigned c = s[i];
        unsigned cp;
        size_t need;
        if (c < 0x80) {
            cp = c;
            need = 0;
        } else if (c >= 0xc2 && c <= 0xdf) {
            cp = c & 0x1f;
            need = 1;
        } else if (c >= 0xe0 && c <= 0xef) {
            cp = c & 0x0f;
            need = 2;
        } else if (c >= 0xf0 && c <= 0xf4) {
            cp = c & 0x07;
            need = 3;
        } else {
            return -1;
        }
        if (len - i - 1 < need) {
            return -1;
        }
        for (size_t k = 1; k <= need; k++) {
            unsigned cc = s[i + k];
            if ((cc & 0xc0) != 0x80) {
                return -1;
            }
            cp = (cp << 6) | (cc & 0x3f);
        }
        if ((need == 2 && cp < 0x800) || (need == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff)) {
            return -1;
        }
        int multiline_ok = (flags & PW_STR_MULTILINE) && (cp == '\t' || cp == '\n' || cp == '\r');
        if ((cp < 0x20 && !multiline_ok) || (cp >= 0x7f && cp <= 0x9f)) {
            ctrl = 1;
        }
        i += need + 1;
        count++;
    }
    *ncp = count;
    *has_ctrl = ctrl;
    return 0;
}

int pw_utf8_scan(const char *s, size_t len, int allow_ws, size_t *nchars, int *has_ctrl)
{
    size_t n = 0;
    int ctrl = 0;
    if (pw_utf8_decode((const unsigned char *)s, len, allow_ws ? PW_STR_MULTILINE : 0, &n, &ctrl) !=
        0) {
        return -1;
    }
    *nchars = n;
    *has_ctrl = ctrl;
    return 0;
}

static int pw_is_blank(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r' && c != '\v' && c != '\f') {
            return 0;
        }
    }
    return 1;
}

/* Checks one string field's content; 0 when valid, else adds one error. */
static int pw_check_text(const char *s, size_t len, size_t max_chars, unsigned flags, int index,
                         const char *field, pw_errors *errs)
{
    size_t ncp = 0;
    int ctrl = 0;
    if (pw_utf8_decode((const unsigned char *)s, len, flags, &ncp, &ctrl) != 0) {
        pw_errors_add(errs, index, field, "must be valid UTF-8");
        return -1;
    }
    if ((flags & PW_STR_REQUIRED) && pw_is_blank(s, len)) {
        pw_errors_add(errs, index, field, len ? "must not be blank" : "must not be empty");
        return -1;
    }
    if (ncp > max_chars) {
        pw_errors_add(errs, index, field, "must be at most %zu characters", max_chars);
        return -1;
    }
    if (ctrl) {
        pw_errors_add(errs, index, field, "must not contain control characters");
        return -1;
    }
    return 0;
}

static void pw_free_str(char **s)
{
    if (*s != NULL && *s != protobuf_c_empty_string) {
        free(*s);
    }
    *s = (char *)protobuf_c_empty_string;
}

/* ---- value, ts, severity ------------------------------------------------- */

static int pw_check_value(double v, int index, pw_errors *errs)
{
    if (!isfinite(v)) {
        pw_errors_add(errs, index, "value", "must be a finite number");
        return -1;
    }
    if (fabs(v) > PW_MAX_ABS_VALUE) {
        pw_errors_add(errs, index, "value", "magnitude must not exceed 1e15");
        return -1;
    }
    return 0;
}

static int pw_check_ts_range(int64_t ts, int index, int64_t now_ms, pw_errors *errs)
{
    if (ts < 0) {
        pw_errors_add(errs, index, "ts", "must not be negative");
        return -1;
    }
    if (ts < now_ms - PW_MAX_PAST_MS) {
        pw_errors_add(errs, index, "ts", "is more than 30 days in the past");
        return -1;
    }
    if (ts > now_ms + PW_MAX_FUTURE_MS) {
        pw_errors_add(errs, index, "ts", "is more than 1 hour in the future");
        return -1;
    }
    return 0;
}

static const char *const pw_severity_names[] = {NULL, "info", "warning", "critical"};

const char *pw_severity_name(Iot__V1__Severity s)
{
    if (s >= IOT__V1__SEVERITY__SEVERITY_INFO && s <= IOT__V1__SEVERITY__SEVERITY_CRITICAL) {
        return pw_severity_names[s];
    }
    return NULL;
}

int pw_severity_parse(const char *name, Iot__V1__Severity *out)
{
    for (int s = IOT__V1__SEVERITY__SEVERITY_INFO; s <= IOT__V1__SEVERITY__SEVERITY_CRITICAL; s++) {
        if (name != NULL && strcmp(name, pw_severity_names[s]) == 0) {
            *out = (Iot__V1__Severity)s;
            return 0;
        }
    }
    return -1;
}

/* ---- JSON input ---------------------------------------------------------- */

typedef struct {
    const char *key;
    size_t max_chars;
    unsigned flags;
} pw_str_rule;

static const pw_str_rule pw_rule_device = {"device_id", PW_MAX_ID_LEN, PW_STR_REQUIRED};
static const pw_str_rule pw_rule_zone = {"zone", PW_MAX_ZONE_LEN, PW_STR_REQUIRED};
static const pw_str_rule pw_rule_type = {"type", PW_MAX_TYPE_LEN, PW_STR_REQUIRED};
static const pw_str_rule pw_rule_code = {"code", PW_MAX_CODE_LEN, PW_STR_REQUIRED};
static const pw_str_rule pw_rule_unit = {"unit", PW_MAX_UNIT_LEN, 0};
static const pw_str_rule pw_rule_firmware = {"firmware", PW_MAX_FIRMWARE_LEN, 0};
static const pw_str_rule pw_rule_message = {"message", PW_MAX_MESSAGE_LEN, PW_STR_MULTILINE};

/* Reads a string member under rule into *dst (heap copy). Missing optional
 * members leave *dst untouched. 0 when valid. */
static int pw_json_str(const json_t *obj, const pw_str_rule *rule, int index, char **dst,
                       pw_errors *errs)
{
    const json_t *v = json_object_get(obj, rule->key);
    if (v == NULL) {
        if (rule->flags & PW_STR_REQUIRED) {
            pw_errors_add(errs, index, rule->key, "is required");
            return -1;
        }
        return 0;
    }
    if (!json_is_string(v)) {
        pw_errors_add(errs, index, rule->key, "must be a string");
        return -1;
    }
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (pw_check_text(s, len, rule->max_chars, rule->flags, index, rule->key, errs) != 0) {
        return -1;
    }
    char *copy = strndup(s, len);
    if (copy == NULL) {
        pw_errors_add(errs, index, rule->key, "out of memory");
        return -1;
    }
    pw_free_str(dst);
    *dst = copy;
    return 0;
}

static int pw_json_value(const json_t *obj, int index, double *out, pw_errors *errs)
{
    const json_t *v = json_object_get(obj, "value");
    if (v == NULL) {
        pw_errors_add(errs, index, "value", "is required");
        return -1;
    }
    if (!json_is_number(v)) {
        pw_errors_add(errs, index, "value", "must be a number");
        return -1;
    }
    double d = json_number_value(v);
    if (pw_check_value(d, index, errs) != 0) {
        return -1;
    }
    *out = d;
    return 0;
}

static int pw_json_ts(const json_t *obj, int index, int64_t now_ms, int64_t *out, pw_errors *errs)
{
    const json_t *v = json_object_get(obj, "ts");
    int64_t ts;
    if (v == NULL) {
        *out = now_ms;
        return 0;
    }
    if (json_is_integer(v)) {
        ts = (int64_t)json_integer_value(v);
    } else if (json_is_string(v)) {
        if (strlen(json_string_value(v)) != json_string_length(v) ||
            pw_time_parse_rfc3339(json_string_value(v), &ts) != 0) {
            pw_errors_add(errs, index, "ts", "must be an RFC 3339 date-time");
            return -1;
        }
    } else {
        pw_errors_add(errs, index, "ts",
                      "must be an RFC 3339 string or integer epoch milliseconds");
        return -1;
    }
    if (pw_check_ts_range(ts, index, now_ms, errs) != 0) {
        return -1;
    }
    *out = ts;
    return 0;
}

static int pw_json_unknown_keys(const json_t *obj, const char *const *allowed, int index,
                                pw_errors *errs)
{
    int bad = 0;
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)obj, key, v)
    {
        (void)v;
        int known = 0;
        for (const char *const *a = allowed; *a != NULL; a++) {
            if (strcmp(key, *a) == 0) {
                known = 1;
            }
        }
        if (!known) {
            pw_errors_add(errs, index, key, "unknown field");
            bad = 1;
        }
    }
    return bad ? -1 : 0;
}

static const char *const pw_reading_keys[] = {"device_id", "zone", "type",     "value",
                                              "unit",      "ts",   "firmware", NULL};
static const char *const pw_alert_keys[] = {"device_id", "zone", "severity", "code",
                                            "message",   "ts",   "firmware", NULL};

int pw_reading_from_json(const json_t *obj, int index, int64_t now_ms, Iot__V1__Reading *out,
                         pw_errors *errs)
{
    *out = (Iot__V1__Reading)IOT__V1__READING__INIT;
    if (!json_is_object(obj)) {
        pw_errors_add(errs, index, "", "must be a JSON object");
        return -1;
    }
    int bad = 0;
    bad |= pw_json_unknown_keys(obj, pw_reading_keys, index, errs);
    bad |= pw_json_str(obj, &pw_rule_device, index, &out->device_id, errs);
    bad |= pw_json_str(obj, &pw_rule_zone, index, &out->zone, errs);
    bad |= pw_json_str(obj, &pw_rule_type, index, &out->type, errs);
    bad |= pw_json_value(obj, index, &out->value, errs);
    bad |= pw_json_str(obj, &pw_rule_unit, index, &out->unit, errs);
    bad |= pw_json_ts(obj, index, now_ms, &out->ts_ms, errs);
    bad |= pw_json_str(obj, &pw_rule_firmware, index, &out->firmware, errs);
    if (bad) {
        pw_reading_clear(out);
        return -1;
    }
    return 0;
}

static int pw_json_severity(const json_t *obj, int index, Iot__V1__Severity *out, pw_errors *errs)
{
    const json_t *v = json_object_get(obj, "severity");
    if (v == NULL) {
        pw_errors_add(errs, index, "severity", "is required");
        return -1;
    }
    if (!json_is_string(v) || pw_severity_parse(json_string_value(v), out) != 0 ||
        strlen(json_string_value(v)) != json_string_length(v)) {
        pw_errors_add(errs, index, "severity", "must be one of info, warning, critical");
        return -1;
    }
    return 0;
}

int pw_alert_from_json(const json_t *obj, int index, int64_t now_ms, Iot__V1__Alert *out,
                       pw_errors *errs)
{
    *out = (Iot__V1__Alert)IOT__V1__ALERT__INIT;
    if (!json_is_object(obj)) {
        pw_errors_add(errs, index, "", "must be a JSON object");
        return -1;
    }
    int bad = 0;
    bad |= pw_json_unknown_keys(obj, pw_alert_keys, index, errs);
    bad |= pw_json_str(obj, &pw_rule_device, index, &out->device_id, errs);
    bad |= pw_json_str(obj, &pw_rule_zone, index, &out->zone, errs);
    bad |= pw_json_severity(obj, index, &out->severity, errs);
    bad |= pw_json_str(obj, &pw_rule_code, index, &out->code, errs);
    bad |= pw_json_str(obj, &pw_rule_message, index, &out->message, errs);
    bad |= pw_json_ts(obj, index, now_ms, &out->ts_ms, errs);
    bad |= pw_json_str(obj, &pw_rule_firmware, index, &out->firmware, errs);
    if (bad) {
        pw_alert_clear(out);
        return -1;
    }
    return 0;
}

/* Frees strings set by pw_*_from_json. Not for messages from protobuf-c
 * unpack (those are released with the matching __free_unpacked). */
void pw_reading_clear(Iot__V1__Reading *r)
{
    pw_free_str(&r->device_id);
    pw_free_str(&r->zone);
    pw_free_str(&r->type);
    pw_free_str(&r->unit);
    pw_free_str(&r->firmware);
    *r = (Iot__V1__Reading)IOT__V1__READING__INIT;
}

void pw_alert_clear(Iot__V1__Alert *a)
{
    pw_free_str(&a->device_id);
    pw_free_str(&a->zone);
    pw_free_str(&a->code);
    pw_free_str(&a->message);
    pw_free_str(&a->firmware);
    *a = (Iot__V1__Alert)IOT__V1__ALERT__INIT;
}

/* ---- decoded protobuf input ---------------------------------------------- */

static int pw_pb_str(const char *s, const pw_str_rule *rule, int index, pw_errors *errs)
{
    if (s == NULL) {
        s = "";
    }
    if ((rule->flags & PW_STR_REQUIRED) && s[0] == '\0') {
        pw_errors_add(errs, index, rule->key, "is required");
        return -1;
    }
    return pw_check_text(s, strlen(s), rule->max_chars, rule->flags, index, rule->key, errs);
}

static int pw_pb_ts(int64_t ts, int index, int64_t now_ms, unsigned flags, pw_errors *errs)
{
    if (ts == 0 && (flags & PW_CHECK_ZERO_TS)) {
        return 0;
    }
    if (flags & PW_CHECK_NO_WINDOW) {
        if (ts <= 0) {
            pw_errors_add(errs, index, "ts", ts ? "must not be negative" : "is required");
            return -1;
        }
        return 0;
    }
    return pw_check_ts_range(ts, index, now_ms, errs);
}

int pw_reading_check(const Iot__V1__Reading *r, int index, int64_t now_ms, unsigned flags,
                     pw_errors *errs)
{
    int bad = 0;
    bad |= pw_pb_str(r->device_id, &pw_rule_device, index, errs);
    bad |= pw_pb_str(r->zone, &pw_rule_zone, index, errs);
    bad |= pw_pb_str(r->type, &pw_rule_type, index, errs);
    bad |= pw_check_value(r->value, index, errs);
    bad |= pw_pb_str(r->unit, &pw_rule_unit, index, errs);
    bad |= pw_pb_ts(r->ts_ms, index, now_ms, flags, errs);
    bad |= pw_pb_str(r->firmware, &pw_rule_firmware, index, errs);
    return bad ? -1 : 0;
}

int pw_alert_check(const Iot__V1__Alert *a, int index, int64_t now_ms, unsigned flags,
                   pw_errors *errs)
{
    int bad = 0;
    bad |= pw_pb_str(a->device_id, &pw_rule_device, index, errs);
    bad |= pw_pb_str(a->zone, &pw_rule_zone, index, errs);
    if (pw_severity_name(a->severity) == NULL) {
        pw_errors_add(errs, index, "severity", "must be one of info, warning, critical");
        bad = 1;
    }
    bad |= pw_pb_str(a->code, &pw_rule_code, index, errs);
    bad |= pw_pb_str(a->message, &pw_rule_message, index, errs);
    bad |= pw_pb_ts(a->ts_ms, index, now_ms, flags, errs);
    bad |= pw_pb_str(a->firmware, &pw_rule_firmware, index, errs);
    return bad ? -1 : 0;
}
