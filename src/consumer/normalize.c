/* normalize: envelope decoding, validation and normalization (see normalize.h). */
#include "normalize.h"

#include <ctype.h>
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
    char u[PW_MAX_UNIT_LEN + 1];
    pwc_id_normalize(unit, u, sizeof(u));
    for (size_t i = 0; i < n; i++) {
        if (strcmp(rules[i].name, u) == 0)
            return &rules[i];
    }
    return NULL;
}

int pwc_unit_normalize(const char *type, double value, const char *unit, double *out_value,
                       const char **out_unit)
{
    const pwc_unit_rule *rule;
    if (strcasecmp(type, "temperature") == 0) {
        rule = find_rule(temperature_units, sizeof(temperature_units) / sizeof(*rule), unit);
        if (!rule)
            return -1;
        /* °F: (v − 32) × 5/9; written as v·5/9 − 160/9, evaluated the direct way */
        if (rule->offset != 0.0 && rule->scale != 1.0)
            *out_value = (value - 32.0) * 5.0 / 9.0;
        else
            *out_value = value * rule->scale + rule->offset;
        *out_unit = "C";
        return *out_value < -273.15 - 1e-9 ? -1 : 0;
    }
    if (strcasecmp(type, "pressure") == 0) {
        rule = find_rule(pressure_units, sizeof(pressure_units) / sizeof(*rule), unit);
        if (!rule)
            return -1;
        *out_value = value * rule->scale;
        *out_unit = "hPa";
        return *out_value < 0 ? -1 : 0;
    }
    *out_value = value;
    *out_unit = unit;
    return 0;
}

size_t pwc_id_normalize(const char *in, char *out, size_t outlen)
{
    if (outlen == 0)
        return 0;
    const char *s = in ? in : "";
    while (*s && isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        n--;
    if (n > outlen - 1)
        n = outlen - 1;
    for (size_t i = 0; i < n; i++)
        out[i] = (char)tolower((unsigned char)s[i]);
    out[n] = '\0';
    return n;
}

static void copy_str(char *dst, size_t dstlen, const char *src)
{
    snprintf(dst, dstlen, "%s", src ? src : "");
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
    snprintf(detail, detaillen, "%s", msg);
    return -1;
}

static int normalize_reading(const Iot__V1__Reading *r, pwc_record *out, const char **reason,
                             char *detail, size_t detaillen)
{
    out->kind = PWC_READING;
    pwc_id_normalize(r->type, out->type, sizeof(out->type));
    copy_str(out->raw_unit, sizeof(out->raw_unit), r->unit);
    out->raw_value = r->value;
    const char *unit = NULL;
    if (pwc_unit_normalize(out->type, r->value, r->unit, &out->value, &unit) != 0) {
        char msg[160];
        snprintf(msg, sizeof(msg), "unit '%s' is not valid for type '%s' with value %g",
                 r->unit ? r->unit : "", out->type, r->value);
        return fail(reason, PWC_REASON_UNIT, detail, detaillen, msg);
    }
    copy_str(out->unit, sizeof(out->unit), unit);
    pwc_id_normalize(r->device_id, out->device, sizeof(out->device));
    pwc_id_normalize(r->zone, out->zone, sizeof(out->zone));
    copy_str(out->firmware, sizeof(out->firmware), r->firmware);
    fill_times(out, r->ts_ms);
    return 0;
}

static int normalize_alert(const Iot__V1__Alert *a, pwc_record *out)
{
    out->kind = PWC_ALERT;
    pwc_id_normalize(a->device_id, out->device, sizeof(out->device));
    pwc_id_normalize(a->zone, out->zone, sizeof(out->zone));
    copy_str(out->severity, sizeof(out->severity), pw_severity_name(a->severity));
    copy_str(out->code, sizeof(out->code), a->code);
    copy_str(out->message, sizeof(out->message), a->message);
    copy_str(out->firmware, sizeof(out->firmware), a->firmware);
    fill_times(out, a->ts_ms);
    return 0;
}

static int check_payload(const Iot__V1__Envelope *env, int64_t now_ms, char *detail,
                         size_t detaillen)
{
    pw_errors errs;
    pw_errors_init(&errs);
    int rc = -1;
    if (env->payload_case == IOT__V1__ENVELOPE__PAYLOAD_READING && env->reading)
        rc = pw_reading_check(env->reading, -1, now_ms, 0, &errs);
    else if (env->payload_case == IOT__V1__ENVELOPE__PAYLOAD_ALERT && env->alert)
        rc = pw_alert_check(env->alert, -1, now_ms, 0, &errs);
    else
        pw_errors_add(&errs, -1, "payload", "envelope carries neither a reading nor an alert");
    if (rc != 0)
        pw_errors_summary(&errs, detail, detaillen);
    pw_errors_free(&errs);
    return rc;
}

static int ids_present(const pwc_record *r)
{
    return r->device[0] && r->zone[0] && (r->kind != PWC_READING || r->type[0]);
}

int pwc_decode_record(const void *value, size_t len, int64_t now_ms, pwc_record *out,
                      const char **reason, char *detail, size_t detaillen)
{
    memset(out, 0, sizeof(*out));
    if (!value || len == 0)
        return fail(reason, PWC_REASON_UNDECODABLE, detail, detaillen, "empty record value");
    Iot__V1__Envelope *env = iot__v1__envelope__unpack(NULL, len, value);
    if (!env)
        return fail(reason, PWC_REASON_UNDECODABLE, detail, detaillen,
                    "value is not an iot.v1.Envelope");
    int rc = -1;
    if (env->schema_version > PWC_SCHEMA_VERSION) {
        char msg[64];
        snprintf(msg, sizeof(msg), "schema_version %u is newer than %d", env->schema_version,
                 PWC_SCHEMA_VERSION);
        fail(reason, PWC_REASON_SCHEMA, detail, detaillen, msg);
    } else if (!env->token || !env->token[0] || strlen(env->token) >= PWC_TOKEN_LEN) {
        fail(reason, PWC_REASON_INVALID, detail, detaillen, "token: missing or too long");
    } else if (check_payload(env, now_ms, detail, detaillen) != 0) {
        *reason = PWC_REASON_INVALID;
    } else {
        copy_str(out->token, sizeof(out->token), env->token);
        out->received_ms = env->received_ms;
        copy_str(out->consumer, sizeof(out->consumer), env->consumer);
        copy_str(out->source, sizeof(out->source),
                 env->source == IOT__V1__SOURCE__SOURCE_REST   ? "rest"
                 : env->source == IOT__V1__SOURCE__SOURCE_GRPC ? "grpc"
                                                               : "");
        if (env->payload_case == IOT__V1__ENVELOPE__PAYLOAD_READING)
            rc = normalize_reading(env->reading, out, reason, detail, detaillen);
        else
            rc = normalize_alert(env->alert, out);
        if (rc == 0 && !ids_present(out))
            rc = fail(reason, PWC_REASON_INVALID, detail, detaillen,
                      "device_id, zone or type is blank");
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
        if (*p == '.' || *p == '$')
            *p = '_';
    }
}
