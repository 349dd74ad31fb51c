/* rollup: the pre-aggregated buckets the metrics views read, and how a batch
 * is folded into them exactly once. Pure functions: no I/O (buckets.c writes
 * them).
 *
 * rollup_readings and rollup_alerts hold one document per UTC hour *and*
 * one per UTC day, each per Kafka partition: _id "h|<hour-ms>|<tp>" or
 * "d|<day>|<tp>". The state — one cell per (zone, type) with count, sum, min
 * and max of the readings, or per (zone, severity, code) with the count of
 * the alerts, and per zone the devices that became active for their UTC day
 * through a record of the bucket — is packed as an iot.v1.RollupState in the
 * binary field "state". Each document carries `hw`, the highest offset of
 * its partition counted in it: a delivery at offset o is counted only when
 * o > hw. Writes replace the whole state, guarded by the stored version
 * (`_v`, equal to the stored hw), so a writer with an old state never rolls
 * a document back (see docs/architecture.md "Exactly-once storage"). */
#ifndef PWC_ROLLUP_H
#define PWC_ROLLUP_H

#include <bson/bson.h>
#include <stddef.h>

#include "record.h"

typedef enum {
    PWC_ROLLUP_READINGS = 0,
    PWC_ROLLUP_ALERTS = 1,
} pwc_rollup_kind;
#define PWC_ROLLUP_KINDS 2

typedef enum {
    PWC_RES_HOUR = 0,
    PWC_RES_DAY = 1,
} pwc_rollup_res;
#define PWC_ROLLUP_RESOLUTIONS 2
/* Holds a bucket _id ("h|<hour-ms>|<tp>", "d|<day>|<tp>") and a presence _id
 * ("<day>|<device>" with the longest accepted device id). */
#define PWC_ROLLUP_KEY_LEN (PW_DAY_LEN + PW_MAX_ID_BYTES + 8)

const char *pwc_rollup_collection(pwc_rollup_kind k);

/* Bucket _id of e in (k, res). Returns 0, or -1 when e does not feed k. */
int pwc_rollup_key(pwc_rollup_kind k, pwc_rollup_res res, const pwc_entry *e, char *out,
                   size_t outlen);

/* Presence _id in rollup_device_day: "<day>|<device>". 0 or -1 (too long). */
int pwc_device_day_key(const pwc_record *r, char *out, size_t outlen);

typedef struct {
    char key[PWC_ROLLUP_KEY_LEN];
    size_t *idx; /* indexes into the entry array, in batch (= offset) order */
    size_t n;
} pwc_rollup_group;

typedef struct {
    pwc_rollup_group *items;
    size_t n;
} pwc_rollup_groups;

/* Groups the entries of a batch that add to a bucket of (k, res)
 * (contributes or new_device) by bucket. 0 or -1 (ENOMEM). */
int pwc_rollup_group_entries(pwc_rollup_kind k, pwc_rollup_res res, const pwc_entry *entries,
                             size_t n, pwc_rollup_groups *out);
void pwc_rollup_groups_free(pwc_rollup_groups *g);

/* One cell: readings (zone, type) or alerts (zone, severity, code). */
typedef struct {
    char zone[PW_MAX_ZONE_BYTES + 1];  /* the longest accepted values, whole */
    char label[PW_MAX_TYPE_BYTES + 1]; /* type, or severity */
    char code[PW_MAX_CODE_BYTES + 1];  /* alerts only */
    int64_t count;
    double sum, min, max; /* readings only */
} pwc_rollup_cell;

typedef struct {
    pwc_rollup_cell *items;
    size_t n, cap;
} pwc_rollup_cells;

/* The cell bytes the records of one gateway consumer (API key) added. */
typedef struct {
    char *consumer; /* owned */
    uint64_t bytes;
} pwc_rollup_share;

typedef struct {
    pwc_rollup_share *items;
    size_t n, cap;
} pwc_rollup_shares;

/* The state of one bucket document; owns its cells and shares. */
typedef struct {
    int stored;       /* the store holds a version of this document */
    int64_t stored_v; /* its _v (the guard of the next write) */
    int64_t hw;       /* highest offset counted, -1 when none */
    int64_t count;
    pwc_rollup_cells cells;   /* records per (zone, type) / (zone, severity, code) */
    pwc_rollup_cells devices; /* devices that became active, per zone (count only) */
    pwc_rollup_shares shares; /* cell bytes added per gateway consumer */
    size_t bytes;             /* estimated packed size of cells, devices and shares */
    int64_t overflowed;       /* records folded into an overflow cell, not yet reported */
} pwc_rollup_state;

/* The bound of a bucket's packed state (before deflating), so that no bucket
 * document grows past PWC_ROLLUP_DOC_BOUND whatever the input: a record
 * whose new cell would not fit is counted in its bucket's overflow cell,
 * zone PWC_ROLLUP_OVERFLOW_ZONE with the record's type (severity), or with
 * an empty type when even that cell would not fit. The overflow cell keeps
 * the totals right; only the per-zone split of those records is lost.
 * The records of one gateway consumer (API key) add cells up to
 * PWC_ROLLUP_KEY_SHARE only, so one flooding key leaves room for the others. */
#define PWC_ROLLUP_STATE_BUDGET (768u * 1024u)
#define PWC_ROLLUP_DOC_BOUND (1024u * 1024u)
#define PWC_ROLLUP_KEY_SHARE (PWC_ROLLUP_STATE_BUDGET / 4)
#define PWC_ROLLUP_OVERFLOW_ZONE "" /* no accepted zone is blank */

void pwc_rollup_state_init(pwc_rollup_state *s);
void pwc_rollup_state_free(pwc_rollup_state *s);
/* The state stored in doc (NULL: the store has no such bucket). 0, or -1
 * (ENOMEM, or a state field that does not decode). */
int pwc_rollup_state_from_doc(pwc_rollup_kind k, const bson_t *doc, pwc_rollup_state *s);

/* Folds the group's entries above s->hw into s, raising hw. Returns the
 * number of entries counted (0: the bucket already holds all of them), or -1
 * (ENOMEM, s unusable). */
long pwc_rollup_fold(pwc_rollup_kind k, pwc_rollup_state *s, const pwc_rollup_group *g,
                     const pwc_entry *entries);

/* The _v the next write of s stores: its hw, or more when the stored
 * version is already that high (versions only grow). */
int64_t pwc_rollup_next_version(const pwc_rollup_state *s);

/* The bucket document for state s (fields of the group's first entry), with
 * _v = pwc_rollup_next_version(s): without _id when for_set (the body of a
 * $set), else with it.
 * 0, or -1 (ENOMEM). The caller destroys doc. */
int pwc_rollup_doc(pwc_rollup_kind k, pwc_rollup_res res, const pwc_rollup_group *g,
                   const pwc_entry *entries, const pwc_rollup_state *s, int for_set, bson_t *doc);

#endif
