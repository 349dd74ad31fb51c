/* dedupe: the exactly-once decisions of a batch, apart from the I/O that
 * feeds them, so they are unit-tested without a server.
 *
 * - Gate: a delivery whose token insert into its gate (ingest_tokens for
 *   readings, alerts for alerts) succeeded is new and contributes to the
 *   rollups. A duplicate at or below its partition's settled mark is final
 *   (its first delivery was completely written). A duplicate above it is
 *   uncertain: it contributes only when the stored origin is its own
 *   position (a redelivery after a crash between the gate and the rollups).
 * - Presence: the delivery that inserted a device-day document adds the
 *   device to its bucket's active devices; after a crash the same rule by
 *   the stored origin applies.
 * - Guarded writes: a bucket the store does not hold is inserted; one it
 *   holds is updated under the guard {_id, _v: stored _v}. A write that does
 *   not land (no match, duplicate _id, refused by the store) lost a race. */
#ifndef PWC_DEDUPE_H
#define PWC_DEDUPE_H

#include <stddef.h>
#include <stdint.h>

#include "record.h"

enum { PWC_GATE_NEW = 1, PWC_GATE_DUP = 2 };

/* The settled mark of (topic, partition), -1 when unknown. */
typedef int64_t (*pwc_settled_fn)(void *ctx, const char *topic, int32_t partition);

/* Sets entries[i].contributes from gate[i] and writes into uncertain the
 * indexes of the duplicates above their settled mark. Returns their number. */
size_t pwc_dedupe_gate(pwc_entry *entries, size_t n, const int *gate, pwc_settled_fn settled,
                       void *ctx, size_t *uncertain);

/* 1 when stored_origin (NULL: not found) is the position of e. */
int pwc_dedupe_is_own(const pwc_entry *e, const char *stored_origin);

typedef enum {
    PWC_GUARD_LANDED = 0, /* every write landed */
    PWC_GUARD_LOST = 1,   /* at least one lost a race: re-read and re-fold */
    PWC_GUARD_FAILED = 2, /* the store failed: retry the batch */
} pwc_guard_outcome;

/* The outcome of a guarded write command: `expected` guarded updates sent,
 * `matched` of them matched; `dup_inserts` inserts of new documents hit an
 * existing _id; refused: the store refused a stale update; failed: the
 * command failed for another reason. */
pwc_guard_outcome pwc_guard_outcome_of(size_t expected, int64_t matched, size_t dup_inserts,
                                       int refused, int failed);

#endif
