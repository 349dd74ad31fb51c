/* census: what each Kafka partition's records say about the devices, kept
 * per partition shard — the device census the firmware and health views read.
 * Pure functions: no I/O (buckets.c writes the documents).
 *
 * rollup_devices holds one document per (partition, shard), _id
 * "<tp>|<shard>", shard = FNV-1a(device id) mod PW_CENSUS_SHARDS. Its state
 * (packed iot.v1.DeviceCensus in "state") has one entry per device seen on
 * the partition: the zone, firmware and time of its newest record (ties:
 * the later offset) and the time of its oldest. Each document has one writer,
 * the partition's owner, and carries `hw` like a rollup bucket; the views
 * merge a device's entries of its telemetry and alerts partitions.
 *
 * first_seen and last_seen have a resolution of PWC_CENSUS_RESOLUTION_MS: a
 * batch that only moves them by less is folded in memory but needs no write
 * (pwc_census_fold reports whether a write is due), and a shard whose only
 * news are such moves is written at most once per PWC_CENSUS_RESOLUTION_MS.
 * A new device, or a zone or firmware change, is written with its batch. */
#ifndef PWC_CENSUS_H
#define PWC_CENSUS_H

#include <bson/bson.h>
#include <stddef.h>
#include <stdint.h>

#include "record.h"

#define PWC_CENSUS_RESOLUTION_MS 10000
#define PWC_CENSUS_KEY_LEN (PWC_ORIGIN_LEN + 8)

typedef struct {
    char device[PW_MAX_ID_BYTES + 1]; /* the longest accepted values, whole */
    char zone[PW_MAX_ZONE_BYTES + 1];
    char firmware[PW_MAX_FIRMWARE_BYTES + 1];
    int64_t first_ms, last_ms;
    int64_t last_offset;           /* offset of the newest record (tie-break) */
    int64_t w_first_ms, w_last_ms; /* as last written (or read) */
    int unwritten;                 /* new, or zone / firmware changed since written */
} pwc_census_entry;

/* One (partition, shard) document's state; owns its entries. */
typedef struct {
    char key[PWC_CENSUS_KEY_LEN]; /* _id */
    char tp[PWC_ORIGIN_LEN];
    int shard;
    int stored;         /* the store holds a version */
    int64_t stored_v;   /* its _v (guard of the next write) */
    int64_t hw;         /* highest offset folded (in memory) */
    int due;            /* a write is due (changes beyond the resolution) */
    int urgent;         /* ... and cannot wait: a new device, a zone or firmware change */
    int64_t written_us; /* monotonic time of the last write (or read) */
    pwc_census_entry *entries;
    size_t n, cap;
    uint32_t *index; /* open addressing: entry index + 1, 0 = empty */
    size_t nindex;
    size_t bytes;       /* bound of the packed entries (see PWC_CENSUS_BUDGET) */
    int64_t overflowed; /* devices or changes left out for the bound, not yet reported */
} pwc_census;

/* The bound of a census document's packed state (before deflating): each
 * entry is accounted at most strlen(device) + strlen(zone) +
 * strlen(firmware) + 32 bytes. A new device is added while the shard stays
 * within PWC_CENSUS_BUDGET - PWC_CENSUS_RESERVE, and a zone or firmware
 * change while it stays within PWC_CENSUS_BUDGET; what does not fit is left
 * out and counted (pwc_census.overflowed). With typical ids that is tens of
 * thousands of devices per shard. */
#define PWC_CENSUS_BUDGET (768u * 1024u)
#define PWC_CENSUS_RESERVE (128u * 1024u)

/* The shard of a device id. */
int pwc_census_shard(const char *device);
/* _id of (topic, partition, shard). */
void pwc_census_key(const char *topic, int32_t partition, int shard, char *out, size_t outlen);

/* An empty state for key (tp and shard). 0 or -1 (ENOMEM). */
int pwc_census_init(pwc_census *c, const char *topic, int32_t partition, int shard);
void pwc_census_free(pwc_census *c);
/* The state stored in doc, replacing c's entries (c keeps key, tp, shard).
 * 0, or -1 (ENOMEM or a state that does not decode). */
int pwc_census_from_doc(pwc_census *c, const bson_t *doc);

/* The entry of device, or NULL. */
const pwc_census_entry *pwc_census_find(const pwc_census *c, const char *device);

/* Folds e (a delivery of this partition and shard) when its offset is above
 * c->hw, raising hw. Sets c->due when the stored document is now out of date
 * beyond the resolution: a new device, a zone or firmware change, or a time
 * moved by at least PWC_CENSUS_RESOLUTION_MS from the entry as last written.
 * 0, or -1 on ENOMEM (c unusable). */
int pwc_census_fold(pwc_census *c, const pwc_entry *e);

/* 1 when c's document should be written now (at monotonic now_us): an urgent
 * change, or time moves and the last write is at least the resolution ago. */
int pwc_census_write_due(const pwc_census *c, int64_t now_us);

/* After c's document was written at now_us (with _v =
 * pwc_census_next_version(c) as it was then): entries as they are now are the
 * written ones. */
void pwc_census_mark_written(pwc_census *c, int64_t now_us);

/* The _v the next write of c stores: its hw, or more when the stored
 * version is already that high (versions only grow). */
int64_t pwc_census_next_version(const pwc_census *c);

/* The document for c with _v = pwc_census_next_version(c): without _id when
 * for_set. 0 or -1. */
int pwc_census_doc(const pwc_census *c, int for_set, bson_t *doc);

#endif
