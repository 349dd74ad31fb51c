/* consume: the consume loop. Polls the group, accumulates batches bounded by
 * count and time, dead-letters what cannot be stored, writes the rest, and
 * commits offsets synchronously only after the store (and, for dead letters,
 * the DLQ topic) acknowledged. While the store is down the assigned
 * partitions are paused and the batch is retried with capped exponential
 * backoff. Cooperative-sticky rebalances drop revoked partitions' unstored
 * records (the new owner reads them again; storage is idempotent). */
#ifndef PWC_CONSUME_H
#define PWC_CONSUME_H

#include <signal.h>
#include <stddef.h>

#include "config.h"
#include "dlq.h"
#include "ops.h"
#include "store.h"

typedef struct pwc_consumer pwc_consumer;

pwc_consumer *pwc_consumer_new(const pwc_config *cfg, pwc_store *store, pwc_dlq *dlq, pwc_ops *ops,
                               volatile sig_atomic_t *stop, char *err, size_t errlen);

/* Runs until *stop; then finishes the batch, commits and leaves the group. */
int pwc_consumer_run(pwc_consumer *c);
void pwc_consumer_free(pwc_consumer *c);

#endif
