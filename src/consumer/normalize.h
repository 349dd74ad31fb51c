/* normalize: Kafka record value → pwc_record. Decodes the iot.v1.Envelope,
 * validates it with the platform's shared rules, and normalizes units
 * (temperature → °C, pressure → hPa), ids (trimmed, lower-cased) and times
 * (UTC hour start, UTC day). Pure functions: no I/O. */
#ifndef PWC_NORMALIZE_H
#define PWC_NORMALIZE_H

#include <stddef.h>
#include <stdint.h>

#include "record.h"

/* Why a record cannot be stored; the value of the pw-dlq-reason header and of
 * the `reason` label of pw_consumer_dead_lettered_total. */
#define PWC_REASON_UNDECODABLE "undecodable"
#define PWC_REASON_SCHEMA "unsupported_schema"
#define PWC_REASON_INVALID "invalid"
#define PWC_REASON_UNIT "unknown_unit"

#define PWC_SCHEMA_VERSION 1

/* Converts value in unit to the canonical unit of type. Temperature: C, F, K
 * (also °C, degC, celsius, …) → "C"; pressure: Pa, kPa, hPa, mbar, bar, psi →
 * "hPa"; other types keep value and unit. Returns 0, or -1 when the unit is not
 * known for a temperature/pressure reading or the result is physically
 * impossible (below absolute zero, negative pressure). */
int pwc_unit_normalize(const char *type, double value, const char *unit, double *out_value,
                       const char **out_unit);

/* Copies in without leading/trailing whitespace, lower-cased, into out
 * (truncating to outlen-1). Returns the resulting length. */
size_t pwc_id_normalize(const char *in, char *out, size_t outlen);

/* Decodes and normalizes one record value. Returns 0, or -1 with a reason
 * (one of PWC_REASON_*) and a human-readable detail. */
int pwc_decode_record(const void *value, size_t len, int64_t now_ms, pwc_record *out,
                      const char **reason, char *detail, size_t detaillen);

#endif
