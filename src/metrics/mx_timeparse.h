/* mx_timeparse: the text forms of the history queries — window bounds
 * (RFC 3339 or epoch milliseconds), steps ("5m", "1h", "1d", "auto", "raw"),
 * the step arithmetic (alignment to multiples of the step since the epoch,
 * bucket counts, the automatic step) and the opaque page cursors (base64url
 * of "<version>:<ts_ms>:<token>"). Pure functions, no allocation. */
#ifndef MX_TIMEPARSE_H
#define MX_TIMEPARSE_H

#include <stddef.h>
#include <stdint.h>

#define MX_MINUTE_MS 60000LL
#define MX_TIME_MAX_MS 253402300799999LL /* 9999-12-31T23:59:59.999Z */

/* Limits of the history queries. */
#define MX_HIST_BUCKETS_MAX 1500
#define MX_HIST_WINDOW_MAX_MS (31LL * 86400000LL) /* bucketed readings, alerts */
#define MX_HIST_RAW_WINDOW_MAX_MS (6LL * 3600000LL)
#define MX_HIST_STEP_MAX_MS 86400000LL

/* Step values besides a duration in ms. */
#define MX_STEP_AUTO 0
#define MX_STEP_RAW (-1)

/* A window bound: RFC 3339 (offsets and fractional seconds allowed) or
 * epoch milliseconds as 1..15 decimal digits, within [0, MX_TIME_MAX_MS].
 * 0 with *out_ms, or -1. */
int mx_time_parse(const char *s, int64_t *out_ms);

/* "" or "auto": MX_STEP_AUTO; "raw": MX_STEP_RAW; "<N>m", "<N>h", "<N>d"
 * (N decimal, no sign or leading zero) of whole minutes within 1 minute ..
 * 1 day: the duration in ms. 0 with *step_ms, or -1. */
int mx_step_parse(const char *s, int64_t *step_ms);

/* The canonical text of a step of whole minutes: "1d", "3h", "90m".
 * out needs at least 16 bytes. */
void mx_step_format(int64_t step_ms, char *out, size_t n);

/* [from, to) widened to multiples of step: from rounded down, to up. */
void mx_step_align(int64_t from, int64_t to, int64_t step, int64_t *afrom, int64_t *ato);

/* Buckets of the aligned window (>= 1 for from < to). */
int64_t mx_step_buckets(int64_t from, int64_t to, int64_t step);

/* The smallest of 1m, 5m, 10m, 15m, 30m, 1h, 3h, 6h, 12h, 1d whose aligned
 * window has at most MX_HIST_BUCKETS_MAX buckets, or 0 when none has. */
int64_t mx_step_auto(int64_t from, int64_t to);

/* A page position: the last item of the previous page. */
#define MX_TOKEN_MAX 128
typedef struct {
    int64_t ts_ms;
    char token[MX_TOKEN_MAX + 1]; /* visible ASCII, 1..MX_TOKEN_MAX */
} mx_cursor;

#define MX_CURSOR_TEXT_MAX 256 /* encoded length bound, NUL included */

/* The cursor's text (base64url without padding) into out (at least
 * MX_CURSOR_TEXT_MAX bytes). 0, or -1 when c is not a valid position. */
int mx_cursor_encode(const mx_cursor *c, char *out, size_t n);

/* Parses a cursor made by mx_cursor_encode: canonical base64url of
 * "1:<ts_ms>:<token>" only. 0, or -1. */
int mx_cursor_decode(const char *s, mx_cursor *c);

#endif
