/* pw_pipeline: what the consumer records about the pipeline and the metrics
 * service reads back (GET /v1/metrics/pipeline) — the names of the pipeline
 * mark documents in consumer_progress, and the end-to-end latency histogram
 * of fixed logarithmic buckets both sides agree on (bucket bounds, packing
 * into a BSON binary, merging, percentiles, reading a mark's histograms).
 * Pure code, no I/O.
 *
 * One pipeline mark per source partition, _id "pipeline|<topic>:<partition>":
 *   kind   "pipeline" (the one equality field the metrics service queries)
 *   tp     "<topic>:<partition>", topic, partition
 *   hw     highest offset of the partition whose batch was completely handled
 *          (stored, or dead-lettered with the DLQ's ack); -1 none
 *   last_ms  BSON date: when the batch that last raised hw was handled
 *   dl     {reason: count} of the dead letters of offsets <= hw
 *   lat    [{m: minute start (date), h: packed histogram}] of the last
 *          PW_LAT_MINUTES minutes (by the time of storing)
 *   _v     version, raised by every write (guarded writes) */
#ifndef PW_PIPELINE_H
#define PW_PIPELINE_H

#include <bson/bson.h>
#include <stddef.h>
#include <stdint.h>

#define PW_PIPE_ID_PREFIX "pipeline|"
#define PW_PIPE_KIND "pipeline"
#define PW_F_KIND "kind"
#define PW_F_TOPIC "topic"
#define PW_F_PARTITION "partition"
#define PW_F_LAST_MS "last_ms"
#define PW_F_DEAD_LETTERS "dl"
#define PW_F_LATENCY "lat"
#define PW_F_MINUTE "m"
#define PW_F_HIST "h"

/* Minutes of histograms a mark keeps: the longest window (60) plus the
 * current, partial minute. */
#define PW_LAT_MINUTES 61
/* Dead letter reasons a mark keeps apart (the consumer has six; more are
 * counted under PW_PIPE_OTHER_REASON). */
#define PW_PIPE_MAX_REASONS 16
#define PW_PIPE_OTHER_REASON "other"

/* Buckets of latency in milliseconds: 0 holds [0, 1); bucket i in
 * 1..PW_LAT_BUCKETS-2 holds [2^((i-1)/4), 2^(i/4)); the last holds
 * everything from 2^24 ms (4.7 h) on. Each bucket spans a factor of 2^(1/4). */
#define PW_LAT_STEPS_PER_DOUBLING 4
#define PW_LAT_BUCKETS 98
/* A packed histogram: little-endian uint32 counts, trailing empty buckets
 * left out. */
#define PW_LAT_PACKED_MAX (PW_LAT_BUCKETS * 4)

typedef struct {
    uint64_t counts[PW_LAT_BUCKETS];
    uint64_t total;
} pw_lat_hist;

/* The bucket of a latency (negative latencies, from clocks apart, count as 0). */
int pw_lat_bucket(int64_t ms);
/* Bounds of bucket i in ms: [lower, upper); the last bucket's upper is its lower. */
double pw_lat_lower(int i);
double pw_lat_upper(int i);

void pw_lat_add(pw_lat_hist *h, int64_t ms, uint64_t n);
void pw_lat_merge(pw_lat_hist *into, const pw_lat_hist *from);

/* Writes h (counts capped at UINT32_MAX) into out (PW_LAT_PACKED_MAX bytes);
 * returns the bytes used. */
size_t pw_lat_pack(const pw_lat_hist *h, uint8_t *out);
/* Adds a packed histogram to h; -1 when len is not a whole number of
 * counts or too long (nothing added). */
int pw_lat_unpack_add(pw_lat_hist *h, const uint8_t *buf, size_t len);

/* The q-quantile (0 < q <= 1) in ms: the geometric middle of the bucket that
 * holds the ceil(q * total)-th smallest latency (within a factor of 2^(1/8),
 * about ±9 %, of the true value); 0.5 for bucket 0, the lower bound for the
 * last bucket; 0 when h is empty. */
double pw_lat_quantile(const pw_lat_hist *h, double q);

/* Called per well-formed entry of a mark's lat array: its minute start
 * (epoch ms, a positive whole minute) and its packed histogram, which points
 * into the document (valid while the document is). */
typedef void (*pw_lat_entry_fn)(void *ctx, int64_t minute_ms, const uint8_t *packed, uint32_t len);
/* Walks the lat array of a pipeline mark document (borrowed); entries that
 * are not {m: date, h: binary} are skipped. */
void pw_lat_each(const bson_t *doc, pw_lat_entry_fn fn, void *ctx);

#endif
