/* normalize: Kafka record value → pwc_record. Decodes the iot.v1.Envelope,
 * validates it with the platform's shared rules, and normalizes units
 * (temperature → °C, pressure → hPa), ids (trimmed, ASCII lower-cased) and
 * times (UTC hour start, UTC day). The time window is checked against the
 * producer's receive time in the envelope, never against the consumer's
 * clock. Text is copied whole or refused, never shortened. Pure functions:
 * no I/O. */
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

/* Copies in into out (outlen bytes) without leading and trailing ASCII
 * whitespace and with the ASCII letters A-Z lower-cased; every other byte is
 * kept, so a multi-byte UTF-8 character is never changed or split. Returns
 * 0, or -1 when the result does not fit in outlen - 1 bytes (out is then
 * ""): an id is never shortened. */
int pwc_id_normalize(const char *in, char *out, size_t outlen);

/* Decodes and normalizes one record value into out (owned by the caller; no
 * pointer into value is kept). The record's ts must lie within the accepted
 * window around the envelope's received_ms (the producer's receive time),
 * so consumer lag never makes an accepted record invalid; an envelope
 * without received_ms (0) is not checked against a window (its ts must
 * still be positive); the consumer's clock plays no part. Returns 0, or -1 with a reason (one of
 * PWC_REASON_*) and a human-readable detail (valid UTF-8, at most detaillen bytes). */
int pwc_decode_record(const void *value, size_t len, pwc_record *out, const char **reason,
                      char *detail, size_t detaillen);

#endif
