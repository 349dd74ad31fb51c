/* rollup: the pre-aggregated buckets the metrics views read and how a batch
 * is folded into them exactly once.
 *
 * rollup_readings and rollup_alerts hold one document per UTC hour *and Kafka
 * partition* (_id "<hour-ms>|<topic>:<partition>"). Its `cells` array has one
 * entry per (zone, type) with count, sum, min and max of the readings, or per
 * (zone, severity, code) with the count of the alerts, and a `devices` array
 * with, per zone, the devices that became active for the UTC day through a
 * record of this hour and partition (each device counts once per day, in
 * exactly one document). Only the consumer that
 * owns a partition writes that partition's documents, so each document has
 * exactly one writer and no lock is needed. Each document carries `hw`, the
 * highest offset of its partition already counted in it: a delivery at offset
 * o is counted only when o > hw, and the write stores the new absolute state
 * (cells, totals, hw) in one single-document update. A redelivery can never
 * be counted twice, and a stale writer is overwritten by the owner's next
 * write.
 *
 * rollup_device_day holds presence only ("<day>|<device>", inserted once),
 * which is idempotent by itself. Pure functions building BSON; the store
 * executes them (see store.c). */
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
#define PWC_ROLLUP_KEY_LEN 400

const char *pwc_rollup_collection(pwc_rollup_kind k);

/* Bucket _id of e in k: "<hour-ms>|<topic>:<partition>". Returns 0, or -1
 * when e does not feed k. */
int pwc_rollup_key(pwc_rollup_kind k, const pwc_entry *e, char *out, size_t outlen);

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

/* Groups the entries of a batch that add to a bucket (contributes or
 * new_device) by bucket. 0 or -1 (ENOMEM). */
int pwc_rollup_group_entries(pwc_rollup_kind k, const pwc_entry *entries, size_t n,
                             pwc_rollup_groups *out);
void pwc_rollup_groups_free(pwc_rollup_groups *g);

/* One cell: readings (zone, type) or alerts (zone, severity, code). */
typedef struct {
    char zone[PW_MAX_ZONE_LEN + 1];
    char label[PW_MAX_TYPE_LEN + 1]; /* type, or severity */
    char code[PW_MAX_CODE_LEN + 1];  /* alerts only */
    int64_t count;
    double sum, min, max; /* readings only */
} pwc_rollup_cell;

typedef struct {
    pwc_rollup_cell *items;
    size_t n, cap;
} pwc_rollup_cells;

/* The state of one bucket document; owns its cells. */
typedef struct {
    int64_t hw; /* highest offset counted, -1 when none */
    int64_t count;
    pwc_rollup_cells cells;   /* records per (zone, type) / (zone, severity, code) */
    pwc_rollup_cells devices; /* devices that became active, per zone (count only) */
} pwc_rollup_state;

void pwc_rollup_state_init(pwc_rollup_state *s);
void pwc_rollup_state_free(pwc_rollup_state *s);
/* The state stored in doc (NULL: an absent bucket). 0 or -1 (ENOMEM). */
int pwc_rollup_state_from_doc(pwc_rollup_kind k, const bson_t *doc, pwc_rollup_state *s);

/* Folds the group's entries above s->hw into s, raising hw. Returns the
 * number of entries counted (0: the bucket already holds all of them), or -1
 * (ENOMEM, s unusable). */
long pwc_rollup_fold(pwc_rollup_kind k, pwc_rollup_state *s, const pwc_rollup_group *g,
                     const pwc_entry *entries);

/* {$set: {hour, day, tp, hw, count, cells, devices}}: the bucket's whole state,
 * written with filter {_id} and upsert. */
void pwc_rollup_set_op(pwc_rollup_kind k, const pwc_rollup_group *g, const pwc_entry *entries,
                       const pwc_rollup_state *s, bson_t *update);

#endif
