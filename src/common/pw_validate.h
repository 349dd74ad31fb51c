/* pw_validate: the one validation of sensor input, shared by REST (JSON),
 * gRPC (protobuf) and the consumer (decoded envelopes). Errors are collected,
 * not stopped at, so a batch names every bad item by index and field.
 *
 * Text limits (PW_MAX_*_LEN) count characters: Unicode code points of strict
 * UTF-8. A buffer that holds an accepted value needs PW_MAX_*_BYTES + 1
 * bytes (4 bytes per character and the NUL); nothing after this check
 * shortens a value. */
#ifndef PW_VALIDATE_H
#define PW_VALIDATE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "iot/v1/telemetry.pb-c.h"

#define PW_MAX_BATCH 1000
#define PW_MAX_ID_LEN 128
#define PW_MAX_ZONE_LEN 64
#define PW_MAX_TYPE_LEN 32
#define PW_MAX_UNIT_LEN 16
#define PW_MAX_CODE_LEN 64
#define PW_MAX_FIRMWARE_LEN 32
#define PW_MAX_MESSAGE_LEN 1024

/* The longest accepted values in bytes (UTF-8 needs at most 4 per character). */
#define PW_UTF8_MAX_BYTES_PER_CHAR 4
#define PW_MAX_ID_BYTES (PW_UTF8_MAX_BYTES_PER_CHAR * PW_MAX_ID_LEN)
#define PW_MAX_ZONE_BYTES (PW_UTF8_MAX_BYTES_PER_CHAR * PW_MAX_ZONE_LEN)
#define PW_MAX_TYPE_BYTES (PW_UTF8_MAX_BYTES_PER_CHAR * PW_MAX_TYPE_LEN)
#define PW_MAX_UNIT_BYTES (PW_UTF8_MAX_BYTES_PER_CHAR * PW_MAX_UNIT_LEN)
#define PW_MAX_CODE_BYTES (PW_UTF8_MAX_BYTES_PER_CHAR * PW_MAX_CODE_LEN)
#define PW_MAX_FIRMWARE_BYTES (PW_UTF8_MAX_BYTES_PER_CHAR * PW_MAX_FIRMWARE_LEN)
#define PW_MAX_MESSAGE_BYTES (PW_UTF8_MAX_BYTES_PER_CHAR * PW_MAX_MESSAGE_LEN)

#define PW_MAX_PAST_MS (30LL * 86400000LL) /* older than retention: rejected */
#define PW_MAX_FUTURE_MS (3600000LL)       /* clock skew tolerated */

typedef struct {
    int index; /* item index in a batch; -1 for a single object */
    char field[32];
    char message[160];
} pw_field_error;

typedef struct {
    pw_field_error *items;
    size_t len;
    size_t cap;
} pw_errors;

void pw_errors_init(pw_errors *e);
void pw_errors_free(pw_errors *e);
void pw_errors_add(pw_errors *e, int index, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* [{"index":0,"field":"value","message":"must be a finite number"}, …] ("index" omitted when -1) */
json_t *pw_errors_to_json(const pw_errors *e);
/* "items[3].value: must be a finite number; …" (at most n bytes, NUL-terminated). */
void pw_errors_summary(const pw_errors *e, char *out, size_t n);

/* JSON object → Reading. Strings are heap copies owned by out (free with
 * pw_reading_clear). A missing ts becomes now_ms. Returns 0 when valid; else
 * adds errors (index = index) and returns -1 (out is cleared). */
int pw_reading_from_json(const json_t *obj, int index, int64_t now_ms, Iot__V1__Reading *out,
                         pw_errors *errs);
int pw_alert_from_json(const json_t *obj, int index, int64_t now_ms, Iot__V1__Alert *out,
                       pw_errors *errs);
void pw_reading_clear(Iot__V1__Reading *r);
void pw_alert_clear(Iot__V1__Alert *a);

/* Flags of pw_reading_check / pw_alert_check. */
#define PW_CHECK_ZERO_TS 1u   /* a ts of 0 is accepted (ingest: filled with receive time) */
#define PW_CHECK_NO_WINDOW 2u /* ts is not checked against now_ms (only that it is > 0) */

/* Validates already-decoded messages (gRPC requests, Kafka envelopes): the
 * same rules as the JSON path, ts within [now_ms - PW_MAX_PAST_MS, now_ms +
 * PW_MAX_FUTURE_MS] unless PW_CHECK_NO_WINDOW. flags: PW_CHECK_*. */
int pw_reading_check(const Iot__V1__Reading *r, int index, int64_t now_ms, unsigned flags,
                     pw_errors *errs);
int pw_alert_check(const Iot__V1__Alert *a, int index, int64_t now_ms, unsigned flags,
                   pw_errors *errs);

/* Strict UTF-8 (no overlong forms, surrogates, values above U+10FFFF,
 * truncated sequences or stray continuation bytes) of s[0..len): 0 with the
 * number of code points in *nchars and in *has_ctrl whether one is a control
 * character (C0, DEL, C1; with allow_ws tab, LF and CR are not counted as
 * such); -1 when s is not valid UTF-8. */
int pw_utf8_scan(const char *s, size_t len, int allow_ws, size_t *nchars, int *has_ctrl);

/* Cuts the NUL-terminated s after its last complete UTF-8 sequence (for text
 * that had to be shortened to fit a fixed buffer: log details, headers). */
void pw_utf8_trim_tail(char *s);

const char *pw_severity_name(Iot__V1__Severity s); /* "info"… or NULL */
int pw_severity_parse(const char *name, Iot__V1__Severity *out);

#endif
