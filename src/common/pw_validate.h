/* pw_validate: the one validation of sensor input, shared by REST (JSON),
 * gRPC (protobuf) and the consumer (decoded envelopes). Errors are collected,
 * not stopped at, so a batch names every bad item by index and field. */
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

/* Validates already-decoded messages (gRPC requests, Kafka envelopes). A ts of
 * 0 is accepted only when allow_zero_ts (ingest; filled with receive time). */
int pw_reading_check(const Iot__V1__Reading *r, int index, int64_t now_ms, int allow_zero_ts,
                     pw_errors *errs);
int pw_alert_check(const Iot__V1__Alert *a, int index, int64_t now_ms, int allow_zero_ts,
                   pw_errors *errs);

const char *pw_severity_name(Iot__V1__Severity s); /* "info"… or NULL */
int pw_severity_parse(const char *name, Iot__V1__Severity *out);

#endif
