/* mx_calc: the store-independent arithmetic of the views — window bounds in
 * hour buckets, the 7 UTC days of the trend, and accumulation of bucket
 * documents into protobuf-c responses (merging sums/counts/min/max across
 * hour buckets, top-N codes, firmware shares and semantic-version order).
 * Responses are heap-allocated with malloc throughout, so
 * protobuf_c_message_free_unpacked(msg, NULL) releases them. */
#ifndef MX_CALC_H
#define MX_CALC_H

#include <stddef.h>
#include <stdint.h>

#include "iot/v1/metrics.pb-c.h"
#include "pw_time.h"

#define MX_TREND_DAYS 7

/* [from, to) of a window of `hours` hour buckets plus the current one:
 * to = end of the hour containing now, from = to - (hours + 1) h. */
void mx_window(int64_t now_ms, uint32_t hours, int64_t *from_ms, int64_t *to_ms);

/* A UTC day a window touches: whole (full) or in part. */
typedef struct {
    char day[PW_DAY_LEN];
    int64_t start_ms;
    int full;
} mx_day_span;

#define MX_WINDOW_DAYS_MAX 40 /* a 721 h window touches at most 32 days */

/* The UTC days [from_ms, to_ms) touches, oldest first, each marked full when
 * the whole day lies inside. Returns their number (at most max). */
size_t mx_window_days(int64_t from_ms, int64_t to_ms, mx_day_span *out, size_t max);

/* The trend's UTC days, oldest first, ending with the day containing now. */
void mx_trend_days(int64_t now_ms, char days[MX_TREND_DAYS][PW_DAY_LEN]);

/* Index of day in days, or -1. */
int mx_trend_day_index(char days[MX_TREND_DAYS][PW_DAY_LEN], const char *day);

/* A small table keyed by string, kept sorted by key. */
typedef struct {
    char *key;
    uint64_t count;
    double sum, min, max; /* min/max valid once has_range */
    int has_range;
    int64_t last_ms; /* latest timestamp seen (0 = none) */
} mx_entry;

typedef struct {
    mx_entry *v;
    size_t n, cap;
} mx_table;

void mx_table_init(mx_table *t);
void mx_table_free(mx_table *t);
/* Finds key, or NULL. */
const mx_entry *mx_table_find(const mx_table *t, const char *key);
/* Finds or inserts key; NULL when out of memory. */
mx_entry *mx_table_get(mx_table *t, const char *key);

/* Adds one hour bucket (count readings summing to sum, within [min, max]). */
int mx_table_add_bucket(mx_table *t, const char *key, uint64_t count, double sum, double min,
                        double max, int has_range);
/* Adds count to key and raises its last_ms to at least last_ms. */
int mx_table_add_count(mx_table *t, const char *key, uint64_t count, int64_t last_ms);

/* Builders; NULL when out of memory. The tables stay owned by the caller. */
Iot__V1__ZoneTemperatureResponse *mx_build_temperature(const mx_table *zones, int64_t from_ms,
                                                       int64_t to_ms, uint32_t hours);
Iot__V1__AlertBreakdownResponse *mx_build_alerts(const mx_table *severities, const mx_table *codes,
                                                 uint32_t top, int64_t from_ms, int64_t to_ms,
                                                 uint32_t hours);
Iot__V1__ActivityTrendResponse *mx_build_trend(char days[MX_TREND_DAYS][PW_DAY_LEN],
                                               const uint64_t readings[MX_TREND_DAYS],
                                               const uint64_t alerts[MX_TREND_DAYS],
                                               const uint64_t devices[MX_TREND_DAYS]);
/* firmware: key = version, count = devices, last_ms = latest last_seen. */
Iot__V1__FirmwareStatusResponse *mx_build_firmware(const mx_table *firmware);

#endif
