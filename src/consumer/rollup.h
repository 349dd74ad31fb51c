/* rollup: the pre-aggregated buckets the metrics views read
 * (rollup_readings, rollup_alerts, rollup_device_day) and the guarded update
 * documents that apply a batch's deltas exactly once.
 *
 * Every rollup document carries `hw`: for each Kafka partition
 * ("topic:partition") the highest offset whose contribution it contains. A
 * delivery at offset o of partition p is counted in a bucket only when
 * o > hw[p]; the update that counts it raises hw[p] in the same single-document
 * write, so a redelivered message can never be counted twice. Pure functions
 * building BSON; the store executes them (see store.c). */
#ifndef PWC_ROLLUP_H
#define PWC_ROLLUP_H

#include <bson/bson.h>
#include <stddef.h>

#include "record.h"

typedef enum {
    PWC_ROLLUP_READINGS = 0,
    PWC_ROLLUP_ALERTS = 1,
    PWC_ROLLUP_DEVICE_DAY = 2,
} pwc_rollup_kind;
#define PWC_ROLLUP_KINDS 3
#define PWC_ROLLUP_KEY_LEN 300

const char *pwc_rollup_collection(pwc_rollup_kind k);

/* Bucket _id of r in k ("<hour-ms>|<zone>|<type>", "<hour-ms>|<zone>|<severity>|<code>",
 * "<day>|<device>"). Returns 0, or -1 when r does not feed k. */
int pwc_rollup_key(pwc_rollup_kind k, const pwc_record *r, char *out, size_t outlen);

typedef struct {
    char key[PWC_ROLLUP_KEY_LEN];
    size_t *idx; /* indexes into the entry array, in batch (= offset) order */
    size_t n;
} pwc_rollup_group;

typedef struct {
    pwc_rollup_group *items;
    size_t n;
} pwc_rollup_groups;

/* Groups the contributing entries (contributes != 0) of a batch by bucket. 0 or -1 (ENOMEM). */
int pwc_rollup_group_entries(pwc_rollup_kind k, const pwc_entry *entries, size_t n,
                             pwc_rollup_groups *out);
void pwc_rollup_groups_free(pwc_rollup_groups *g);

/* Fast path: one upsert counting every entry of the group, guarded by
 * hw[p] < (smallest offset of p in the group) for each partition p. When the
 * guard fails the upsert collides with the existing _id (E11000) and the
 * caller falls back to the exact path. filter/update are initialised here. */
void pwc_rollup_fast_op(pwc_rollup_kind k, const pwc_rollup_group *g, const pwc_entry *entries,
                        bson_t *filter, bson_t *update);

/* Exact path against the bucket's current state (`current` NULL = absent):
 * counts only entries above the document's hw, guarded by equality on the hw
 * values read. Returns the number of entries counted (0: nothing to do, and
 * filter/out are left uninitialised). *insert = 1 means `out` is a whole
 * document to insert, else `filter`/`out` form an update. */
size_t pwc_rollup_exact_op(pwc_rollup_kind k, const pwc_rollup_group *g, const pwc_entry *entries,
                           const bson_t *current, bson_t *filter, bson_t *out, int *insert);

#endif
