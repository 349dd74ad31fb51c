/* pw_time: wall-clock helpers and timestamp parsing/formatting. All times are
 * epoch milliseconds, UTC. */
#ifndef PW_TIME_H
#define PW_TIME_H

#include <stddef.h>
#include <stdint.h>

#define PW_RFC3339_LEN 32 /* buffer size for pw_time_format_rfc3339 */
#define PW_DAY_LEN 11     /* "YYYY-MM-DD" + NUL */
#define PW_HOUR_MS 3600000LL
#define PW_DAY_MS 86400000LL

int64_t pw_now_ms(void);
int64_t pw_monotonic_us(void);

/* Parses RFC 3339 ("2026-11-25T10:00:00Z", "…T10:00:00.123+01:00"); requires a
 * date, a time and a zone (Z or ±HH:MM). Returns 0 and sets *out_ms, or -1. */
int pw_time_parse_rfc3339(const char *s, int64_t *out_ms);

/* "2026-11-25T10:00:00.123Z" */
void pw_time_format_rfc3339(int64_t ms, char out[PW_RFC3339_LEN]);

/* UTC day "YYYY-MM-DD" of ms. */
void pw_time_utc_day(int64_t ms, char out[PW_DAY_LEN]);

/* Start of the UTC hour / day containing ms. */
int64_t pw_time_hour_start(int64_t ms);
int64_t pw_time_day_start(int64_t ms);

#endif
