/* libFuzzer target: a raw Kafka record value, as a consumer receives it →
 * pwc_decode_record (iot.v1.Envelope decode, validation, normalization). It
 * checks what the consumer relies on: a decoded record is all valid,
 * NUL-terminated UTF-8 within its buffers, its ids normalized (trimmed, no
 * A-Z), its hour and day those of its ts, its units canonical; a refusal has
 * a known reason and a bounded, valid UTF-8 detail; decoding is
 * deterministic. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "normalize.h"
#include "pw_time.h"
#include "pw_validate.h"

/* A text field of the record: terminated within its buffer, valid UTF-8. */
static void fz_check_text(const char *s, size_t cap)
{
    size_t len = strnlen(s, cap);
    size_t chars = 0;
    int ctrl = 0;
    if (len >= cap || pw_utf8_scan(s, len, 1, &chars, &ctrl) != 0) {
        abort();
    }
}

/* A normalized id: not blank, no surrounding whitespace, no A-Z, and
 * normalizing it again changes nothing. */
static void fz_check_id(const char *s, size_t cap)
{
    fz_check_text(s, cap);
    size_t len = strlen(s);
    char again[PW_MAX_ID_BYTES + 1];
    if (len == 0 || len > PW_MAX_ID_BYTES || s[0] == ' ' || s[len - 1] == ' ' ||
        pwc_id_normalize(s, again, sizeof(again)) != 0 || strcmp(again, s) != 0) {
        abort();
    }
    for (size_t i = 0; i < len; i++) {
        if (s[i] >= 'A' && s[i] <= 'Z') {
            abort();
        }
    }
}

static void fz_check_reading(const pwc_record *r)
{
    fz_check_id(r->type, sizeof(r->type));
    fz_check_text(r->unit, sizeof(r->unit));
    fz_check_text(r->raw_unit, sizeof(r->raw_unit));
    fz_check_text(r->type_orig, sizeof(r->type_orig));
    if (strcmp(r->type, "temperature") == 0 && strcmp(r->unit, "C") != 0) {
        abort();
    }
    if (strcmp(r->type, "pressure") == 0 && strcmp(r->unit, "hPa") != 0) {
        abort();
    }
    if (r->value != r->value || r->raw_value != r->raw_value) { /* NaN */
        abort();
    }
}

static void fz_check_alert(const pwc_record *r)
{
    fz_check_text(r->severity, sizeof(r->severity));
    fz_check_text(r->code, sizeof(r->code));
    fz_check_text(r->message, sizeof(r->message));
    if (r->severity[0] == '\0') {
        abort();
    }
}

static void fz_check_record(const pwc_record *r)
{
    if (r->kind != PWC_READING && r->kind != PWC_ALERT) {
        abort();
    }
    fz_check_text(r->token, sizeof(r->token));
    fz_check_text(r->consumer, sizeof(r->consumer));
    fz_check_text(r->source, sizeof(r->source));
    fz_check_text(r->firmware, sizeof(r->firmware));
    fz_check_text(r->device_orig, sizeof(r->device_orig));
    fz_check_text(r->zone_orig, sizeof(r->zone_orig));
    fz_check_id(r->device, sizeof(r->device));
    fz_check_id(r->zone, sizeof(r->zone));
    char day[PW_DAY_LEN];
    pw_time_utc_day(r->ts_ms, day);
    if (r->token[0] == '\0' || r->ts_ms <= 0 || r->hour_ms != pw_time_hour_start(r->ts_ms) ||
        strcmp(r->day, day) != 0) {
        abort();
    }
    if (r->kind == PWC_READING) {
        fz_check_reading(r);
    } else {
        fz_check_alert(r);
    }
}

static void fz_check_refusal(const char *reason, const char *detail, size_t cap)
{
    if (reason == NULL ||
        (strcmp(reason, PWC_REASON_UNDECODABLE) != 0 && strcmp(reason, PWC_REASON_SCHEMA) != 0 &&
         strcmp(reason, PWC_REASON_INVALID) != 0 && strcmp(reason, PWC_REASON_UNIT) != 0)) {
        abort();
    }
    fz_check_text(detail, cap);
    if (detail[0] == '\0') {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static pwc_record a, b; /* large: not on the stack */
    const char *reason = NULL, *reason2 = NULL;
    char detail[256], detail2[256];
    memset(detail, 0x7f, sizeof(detail));
    int rc = pwc_decode_record(data, size, &a, &reason, detail, sizeof(detail));
    int rc2 = pwc_decode_record(data, size, &b, &reason2, detail2, sizeof(detail2));
    if (rc != rc2 || memcmp(&a, &b, sizeof(a)) != 0) {
        abort(); /* deterministic */
    }
    if (rc == 0) {
        fz_check_record(&a);
    } else if (rc == -1) {
        fz_check_refusal(reason, detail, sizeof(detail));
        if (reason2 != reason || strcmp(detail, detail2) != 0) {
            abort();
        }
    } else {
        abort();
    }
    return 0;
}
