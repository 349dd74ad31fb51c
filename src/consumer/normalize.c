/* normalize: envelope decoding, validation and normalization (see normalize.h). */
#include "normalize.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

typedef struct {
    const char *name;
    double scale; /* canonical = value * scale + offset */
    double offset;
} pwc_unit_rule;

static const pwc_unit_rule temperature_units[] = {
    {"c", 1.0, 0.0},
    {"°c", 1.0, 0.0},
    {"degc", 1.0, 0.0},
    {"celsius", 1.0, 0.0},
    {"k", 1.0, -273.15},
    {"kelvin", 1.0, -273.15},
    {"f", 5.0 / 9.0, -160.0 / 9.0},
    {"°f", 5.0 / 9.0, -160.0 / 9.0},
    {"degf", 5.0 / 9.0, -160.0 / 9.0},
    {"fahrenheit", 5.0 / 9.0, -160.0 / 9.0},
};

static const pwc_unit_rule pressure_units[] = {
    {"hpa", 1.0, 0.0},  {"mbar", 1.0, 0.0},   {"pa", 0.01, 0.0},
    {"kpa", 10.0, 0.0}, {"bar", 1000.0, 0.0}, {"psi", 68.94757293168361, 0.0},
};

static const pwc_unit_rule *find_rule(const pwc_unit_rule *rules, size_t n, const char *unit)
{
    char u[PW_MAX_UNIT_BYTES + 1];
    if (pwc_id_normalize(unit, u, sizeof(u)) != 0) {
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if (strcmp(rules[i].name, u) == 0) {
            return &rules[i];
        }
    }
    return NULL;
}

int pwc_unit_normalize(const char *type, double value, const char *unit, double *out_value,
                       const char **out_unit)
{
    const pwc_unit_rule *rule;
    if (strcasecmp(type, "temperature") == 0) {
        rule = find_rule(temperature_units, sizeof(temperature_units) / sizeof(*rule), unit);
        if (!rule) {
            return -1;
        }
        /* °F: (v − 32) × 5/9; written as v·5/9 − 160/9, evaluated the direct way */
        if (rule->offset != 0.0 && rule->scale != 1.0) {
            *out_value = (value - 32.0) * 5.0 / 9.0;
        } else {
            *out_value = value * rule->scale + rule->offset;
        }
        *out_unit = "C";
        return *out_value < -273.15 - 1e-9 ? -1 : 0;
    }
    if (strcasecmp(type, "pressure") == 0) {
        rule = find_rule(pressure_units, sizeof(pressure_units) / sizeof(*rule), unit);
        if (!rule) {
            return -1;
        }
        *out_value = value * rule->scale;
        *out_unit = "hPa";
        return *out_value < 0 ? -1 : 0;
    }
    *out_value = value;
    *out_unit = unit;
    return 0;
}

/* The whitespace the C locale's isspace() knows, whatever the locale. */
static int is_ascii_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

int pwc_id_normalize(const char *in, char *out, size_t outlen)
{
    if (outlen == 0) {
        return -1;
    }
    out[0] = '\0';
    const char *s = in ? in : "";
    while (*s && is_ascii_space((unsigned char)*s)) {
        s++;
    }
    size_t n = strlen(s);
    while (n > 0 && is_ascii_space((unsigned char)s[n - 1])) {
        n--;
    }
    if (n > outlen - 1) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        out[i] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    }
    out[n] = '\0';
    return 0;
}

/* Copies src whole into dst; -1 (dst "") when it does not fit. */
static int copy_str(char *dst, size_t dstlen, const char *src)
{
    const char *s = src ? src : "";
    size_t n = strlen(s);
    if (n >= dstlen) {
        dst[0] = '\0';
        return -1;
    }
    memcpy(dst, s, n + 1);
    return 0;
}

/* An id normalized into out, and the sensor's original into orig when
 * normalization changed it. -1 when either does not fit. */
static int normalize_id(const char *in, char *out, size_t outlen, char *orig, size_t origlen)
{
    if (pwc_id_normalize(in, out, outlen) != 0) {
        return -1;
    }
    orig[0] = '\0';
    if (in != NULL && strcmp(in, out) != 0) {
        return copy_str(orig, origlen, in);
    }
    return 0;
}

static void fill_times(pwc_record *out, int64_t ts_ms)
{
    out->ts_ms = ts_ms;
    out->hour_ms = pw_time_hour_start(ts_ms);
    pw_time_utc_day(ts_ms, out->day);
}

static int fail(const char **reason, const char *why, char *detail, size_t detaillen,
                const char *msg)
{
    *reason = why;
    if (detaillen > 0) {
        snprintf(detail, detaillen, "%s", msg);
        pw_utf8_trim_tail(detail);
    }
    return -1;
}

/* A value longer than its buffer: cannot happen after validation (the
 * buffers hold the longest accepted value), refused rather than cut. */
static int too_long(const char **reason, char *detail, size_t detaillen, const char *field)
{
    char msg[96];
    snprintf(msg, sizeof(msg), "%s: longer than the consumer can store whole", field);
    return fail(reason, PWC_REASON_INVALID, detail, detaillen, msg);
}

static int normalize_reading(const Iot__V1__Reading *r, pwc_record *out, const char **reason,
                             char *detail, size_t detaillen)
{
    out->kind = PWC_READING;
    if (normalize_id(r->type, out->type, sizeof(out->type), out->type_orig,
                     sizeof(out->type_orig)) != 0) {
        return too_long(reason, detail, detaillen, "type");
    }
    if (copy_str(out->raw_unit, sizeof(out->raw_unit), r->unit) != 0) {
        return too_long(reason, detail, detaillen, "unit");
    }
    out->raw_value = r->value;
    const char *unit = NULL;
    if (pwc_unit_normalize(out->type, r->value, r->unit, &out->value, &unit) != 0) {
        char msg[PW_MAX_UNIT_BYTES + PW_MAX_TYPE_BYTES + 80];
        snprintf(msg, sizeof(msg), "unit '%s' is not valid for type '%s' with value %g",
                 r->unit ? r->unit : "", out->type, r->value);
        return fail(reason, PWC_REASON_UNIT, detail, detaillen, msg);
    }
    if (copy_str(out->unit, sizeof(out->unit), unit) != 0) {
        return too_long(reason, detail, detaillen, "unit");
    }
    if (normalize_id(r->device_id, out->device, sizeof(out->device), out->device_orig,
                     sizeof(out->device_orig)) != 0) {
        return too_long(reason, detail, detaillen, "device_id");
    }
    if (normalize_id(r->zone, out->zone, sizeof(out->zone), out->zone_orig,
                     sizeof(out->zone_orig)) != 0) {
        return too_long(reason, detail, detaillen, "zone");
    }
    if (copy_str(out->firmware, sizeof(out->firmware), r->firmware) != 0) {
        return too_long(reason, detail, detaillen, "firmware");
    }
    fill_times(out, r->ts_ms);
    return 0;
}

static int normalize_alert(const Iot__V1__Alert *a, pwc_record *out, const char **reason,
                           char *detail, size_t detaillen)
{
    out->kind = PWC_ALERT;
    if (normalize_id(a->device_id, out->device, sizeof(out->device), out->device_orig,
                     sizeof(out->device_orig)) != 0) {
        return too_long(reason, detail, detaillen, "device_id");
    }
    if (normalize_id(a->zone, out->zone, sizeof(out->zone), out->zone_orig,
                     sizeof(out->zone_orig)) != 0) {
        return too_long(reason, detail, detaillen, "zone");
    }
    copy_str(out->severity, sizeof(out->severity), pw_severity_name(a->severity));
    if (copy_str(out->code, sizeof(out->code), a->code) != 0) {
        return too_long(reason, detail, detaillen, "code");
    }
    if (copy_str(out->message, sizeof(out->message), a->message) != 0) {
        return too_long(reason, detail, detaillen, "message");
    }
    if (copy_str(out->firmware, sizeof(out->firmware), a->firmware) != 0) {
        return too_long(reason, detail, detaillen, "firmware");
    }
    fill_times(out, a->ts_ms);
    return 0;
}

/* The shared validation, with the time window around the producer's receive
 * time (received_ms): what the producer accepted stays acceptable however
 * late it is consumed. Without received_ms (0: an envelope from before it
 * existed) there is no receive time to check against, and the producer that
 * wrote it checked the window already: only ts > 0 is required. */
static int check_payload(const Iot__V1__Envelope *env, char *detail, size_t detaillen)
{
    pw_errors errs;
    pw_errors_init(&errs);
    int64_t received = env->received_ms;
    unsigned flags = received > 0 ? 0u : PW_CHECK_NO_WINDOW;
    int rc = -1;
    if (env->payload_case == IOT__V1__ENVELOPE__PAYLOAD_READING && env->reading) {
        rc = pw_reading_check(env->reading, -1, received, flags, &errs);
    } else if (env->payload_case == IOT__V1__ENVELOPE__PAYLOAD_ALERT && env->alert) {
        rc = pw_alert_check(env->alert, -1, received, flags, &errs);
    } else {
        pw_errors_add(&errs, -1, "payload", "envelope carries neither a reading nor an alert");
    }
    /* the window around a tiny received_ms reaches below the epoch: a stored
     * time is always positive (found by fuzzing) */
    int64_t ts = 0;
    if (rc == 0) { /* the payload is there */
        ts = env->payload_case == IOT__V1__ENVELOPE__PAYLOAD_READING ? env->reading->ts_ms
                                                                     : env->alert->ts_ms;
    }
    if (rc == 0 && ts <= 0) {
        pw_errors_add(&errs, -1, "ts", "must be positive");
        rc = -1;
    }
    if (rc != 0) {
        pw_errors_summary(&errs, detail, detaillen);
    }
    pw_errors_free(&errs);
    return rc;
}

/* A token is stored as the record's _id, a BSON string: printable ASCII
 * (the producer's tokens are UUIDs), never empty, at most PWC_TOKEN_LEN - 1
 * bytes. */
static int token_ok(const char *t)
{
    size_t n = t ? strlen(t) : 0;
    if (n == 0 || n >= PWC_TOKEN_LEN) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (t[i] < 0x21 || t[i] > 0x7e) {
            return 0;
        }
    }
    return 1;
}

/* The gateway consumer name: whole and valid UTF-8, or the envelope is refused. */
static int consumer_ok(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    size_t chars = 0;
    int ctrl = 0;
    return n < PWC_CONSUMER_LEN && pw_utf8_scan(name ? name : "", n, 0, &chars, &ctrl) == 0 &&
           !ctrl;
}

static int ids_present(const pwc_record *r)
{
    return r->device[0] && r->zone[0] && (r->kind != PWC_READING || r->type[0]);
}

int pwc_decode_record(const void *value, size_t len, pwc_record *out, const char **reason,
                      char *detail, size_t detaillen)
{
    memset(out, 0, sizeof(*out));
    if (!value || len == 0) {
        return fail(reason, PWC_REASON_UNDECODABLE, detail, detaillen, "empty record value");
    }
    Iot__V1__Envelope *env = iot__v1__envelope__unpack(NULL, len, value);
    if (!env) {
        return fail(reason, PWC_REASON_UNDECODABLE, detail, detaillen,
                    "value is not an iot.v1.Envelope");
    }
    int rc = -1;
    if (env->schema_version > PWC_SCHEMA_VERSION) {
        char msg[64];
        snprintf(msg, sizeof(msg), "schema_version %u is newer than %d", env->schema_version,
                 PWC_SCHEMA_VERSION);
        fail(reason, PWC_REASON_SCHEMA, detail, detaillen, msg);
    } else if (!token_ok(env->token)) {
        fail(reason, PWC_REASON_INVALID, detail, detaillen,
             "token: missing, too long or not printable ASCII");
    } else if (!consumer_ok(env->consumer)) {
        fail(reason, PWC_REASON_INVALID, detail, detaillen,
             "consumer: too long, not valid UTF-8 or with control characters");
    } else if (check_payload(env, detail, detaillen) != 0) {
        *reason = PWC_REASON_INVALID;
    } else {
        copy_str(out->token, sizeof(out->token), env->token);
        out->received_ms = env->received_ms;
        copy_str(out->consumer, sizeof(out->consumer), env->consumer);
        copy_str(out->source, sizeof(out->source),
                 env->source == IOT__V1__SOURCE__SOURCE_REST   ? "rest"
                 : env->source == IOT__V1__SOURCE__SOURCE_GRPC ? "grpc"
                                                               : "");
        if (env->payload_case == IOT__V1__ENVELOPE__PAYLOAD_READING) {
            rc = normalize_reading(env->reading, out, reason, detail, detaillen);
        } else {
            rc = normalize_alert(env->alert, out, reason, detail, detaillen);
        }
        if (rc == 0 && !ids_present(out)) {
            rc = fail(reason, PWC_REASON_INVALID, detail, detaillen,
                      "device_id, zone or type is blank");
        }
    }
    iot__v1__envelope__free_unpacked(env, NULL);
    return rc;
}

void pwc_origin_format(const char *topic, int32_t partition, int64_t offset, char *out,
                       size_t outlen)
{
    char tp[PWC_ORIGIN_LEN];
    pwc_tp_key(topic, partition, tp, sizeof(tp));
    snprintf(out, outlen, "%s:%lld", tp, (long long)offset);
}

void pwc_tp_key(const char *topic, int32_t partition, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s:%d", topic, (int)partition);
    for (char *p = out; *p; p++) {
        if (*p == '.' || *p == '$') {
            *p = '_';
        }
    }
}
