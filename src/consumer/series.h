/* series: the minute series of readings the history views read — keys,
 * zone admission, folding, and the documents with their packed state. Pure
 * functions, no I/O; series.c also holds pwc_series_write (store_int.h),
 * which reads and writes them.
 *
 * series_readings holds one document per (kind, key, reading type, UTC hour,
 * Kafka partition): kind "d" (key = device) or "z" (key = zone),
 *   _id   "<k>\x1f<key>\x1f<type>\x1f<hour_ms>\x1f<topic>:<partition>"
 *   sk    "<k>\x1f<key>\x1f<type>\x1f<YYYY-MM-DD>" (UTC day of the hour; the
 *         field readers query by equality)
 *   hour, start (the hour start, dates), tp, hw, _v, and
 *   state: an iot.v1.SeriesState packed like the rollup states — per minute
 *   of the hour that holds readings, count, sum, min, max and the earliest
 *   and latest reading time, plus the unit.
 * A reading falls in the hour and minute of its own ts. Each document's hw is
 * the highest offset of its partition counted in it, and its writes are
 * guarded by _v exactly like the rollup buckets (see rollup.h).
 *
 * Zone series are bounded per partition and hour: the first
 * PWC_SERIES_ZONES_MAX zones seen on a partition in an hour (in offset order)
 * get zone series of their own; the readings of any other zone of that
 * partition and hour count in zone PWC_SERIES_OTHER_ZONE. The admitted zones
 * are stored in one admission document per partition and hour, _id
 * "a\x1f<hour_ms>\x1f<topic>:<partition>" (no sk: readers never see it).
 * The decision is a function of the partition's readings in offset order,
 * so every writer, and every redelivery, makes the same one. */
#ifndef PWC_SERIES_H
#define PWC_SERIES_H

#include <bson/bson.h>
#include <stddef.h>
#include <stdint.h>

#include "record.h"

typedef enum {
    PWC_SERIES_DEVICE = 0,
    PWC_SERIES_ZONE = 1,
} pwc_series_kind;

#define PWC_SERIES_MINUTES 60
#define PWC_SERIES_SEP "\x1f" /* no validated id contains it */
#define PWC_SERIES_OTHER_ZONE "(other)"
#define PWC_SERIES_ZONES_MAX 512 /* zones with series of their own, per partition and hour */
/* "<k>␟<device>␟<type>␟<hour_ms>␟<tp>" with the longest accepted values */
#define PWC_SERIES_KEY_LEN (PW_MAX_ID_BYTES + PW_MAX_TYPE_BYTES + PWC_ORIGIN_LEN + 32)

/* The hour start and the minute (0..59) of a reading's ts. */
int64_t pwc_series_hour(int64_t ts_ms);
int pwc_series_minute(int64_t ts_ms);

/* The document's _id and sk ("…␟<YYYY-MM-DD>"); tp = "<topic>:<partition>".
 * 0, or -1 when out is too small. */
int pwc_series_id(pwc_series_kind k, const char *key, const char *type, int64_t hour_ms,
                  const char *tp, char *out, size_t outlen);
int pwc_series_sk(pwc_series_kind k, const char *key, const char *type, int64_t hour_ms, char *out,
                  size_t outlen);
/* The admission document's _id. 0 or -1. */
int pwc_series_zones_id(int64_t hour_ms, const char *tp, char *out, size_t outlen);

typedef struct {
    int64_t count; /* 0: no reading in this minute */
    double sum, min, max;
    int64_t first_ms, last_ms; /* earliest and latest reading ts */
} pwc_series_cell;

/* The state of one series document (no heap: copied by value). */
typedef struct {
    int stored;       /* the store holds a version of this document */
    int64_t stored_v; /* its _v (the guard of the next write) */
    int64_t hw;       /* highest offset counted, -1 when none */
    char unit[PW_MAX_UNIT_BYTES + 1];
    pwc_series_cell cells[PWC_SERIES_MINUTES];
} pwc_series_state;

void pwc_series_state_init(pwc_series_state *s);
/* The state stored in doc (NULL: the store has none). 0, or -1 when the
 * state field does not decode. */
int pwc_series_state_from_doc(const bson_t *doc, pwc_series_state *s);

/* Counts reading e when its offset is above s->hw (raising hw). The unit is
 * the first counted reading's. Returns 1 when counted, 0 when s already
 * holds it. */
int pwc_series_fold(pwc_series_state *s, const pwc_entry *e);

/* The _v the next write of s stores (versions only grow). */
int64_t pwc_series_next_version(const pwc_series_state *s);

/* What a series document is: its kind, key, type, hour and partition. */
typedef struct {
    pwc_series_kind kind;
    const char *key;  /* device or (admitted) zone */
    const char *type; /* reading type */
    int64_t hour_ms;
    const char *tp; /* "<topic>:<partition>" */
} pwc_series_ref;

/* The document for state s: without _id when for_set (the body of a $set).
 * 0, or -1 (ENOMEM, or a key too long). The caller destroys doc. */
int pwc_series_doc(const pwc_series_ref *ref, const pwc_series_state *s, int for_set, bson_t *doc);

/* The zones admitted to series of their own on one partition in one hour. */
typedef struct {
    int64_t hour_ms;
    char tp[PWC_ORIGIN_LEN]; /* "<topic>:<partition>" */
    int stored;
    int64_t stored_v;
    int changed;  /* zones admitted since the last write */
    char **zones; /* owned */
    size_t n, cap;
} pwc_series_zones;

/* An empty admission state of (hour_ms, tp). */
void pwc_series_zones_init(pwc_series_zones *z, int64_t hour_ms, const char *tp);
void pwc_series_zones_free(pwc_series_zones *z);
/* The admission state of (hour_ms, tp) stored in doc (NULL: none). 0 or -1
 * (ENOMEM). */
int pwc_series_zones_from_doc(const bson_t *doc, int64_t hour_ms, const char *tp,
                              pwc_series_zones *z);
/* The zone series a reading of zone counts in: zone itself when admitted
 * (admitting it when there is room), else PWC_SERIES_OTHER_ZONE. The result
 * points into z or is static. NULL on ENOMEM. */
const char *pwc_series_zone_decide(pwc_series_zones *z, const char *zone);
/* The admission document of z, like pwc_series_doc. */
int pwc_series_zones_doc(const pwc_series_zones *z, int for_set, bson_t *doc);

#endif
