/* pipeline: the consumer's pipeline marks (consumer_progress, _id
 * "pipeline|<topic>:<partition>", shape in pw_pipeline.h) — per source
 * partition the highest offset whose batch was completely handled (stored or
 * dead-lettered), when that was, the dead letters by reason and a latency
 * histogram per minute (producer receive -> stored). Written once per
 * batch, after the store and the DLQ acknowledged it and before its offsets
 * are committed, under the guard {_id, _v}; a batch folds only offsets above
 * the mark's hw, so a re-delivered record is never counted twice. */
#ifndef PWC_PIPELINE_H
#define PWC_PIPELINE_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

typedef struct pwc_pipeline pwc_pipeline;

/* One handled record of a batch; the strings stay owned by the caller and
 * live for the call. */
typedef struct {
    const char *topic;
    int32_t partition;
    int64_t offset;
    const char *reason;  /* dead letter reason, NULL: stored */
    int64_t received_ms; /* the producer's receive time (0: unknown, no sample) */
} pwc_pipe_item;

/* The in-memory marks of the partitions this process writes; NULL on ENOMEM. */
pwc_pipeline *pwc_pipeline_new(void);
void pwc_pipeline_free(pwc_pipeline *p);

/* Folds items (handled at now_ms) into their partitions' marks and writes
 * them. 0, or -1 with err (nothing may be committed then; a retry with the
 * same items is exact). */
int pwc_pipeline_write(pwc_pipeline *p, pwc_store *s, const pwc_pipe_item *items, size_t n,
                       int64_t now_ms, char *err, size_t errlen);

#endif
