/* sweeper: the retention sweep's own thread, so that deleting an hour of
 * expired documents never holds up the consume loop. Runs only against a
 * server without TTL indexes (FerretDB), every PW_RETENTION_SWEEP_SECONDS,
 * with its own client from the store's pool (pwc_store_sweep). */
#ifndef PWC_SWEEPER_H
#define PWC_SWEEPER_H

#include "config.h"
#include "store.h"

typedef struct pwc_sweeper pwc_sweeper;

/* Starts the thread when the store needs a sweep and the interval is > 0;
 * NULL when there is nothing to run (or on ENOMEM, logged). cfg and store
 * must outlive the sweeper. */
pwc_sweeper *pwc_sweeper_start(const pwc_config *cfg, pwc_store *store);
/* Stops the thread (waits for a running sweep to finish) and frees it. NULL ok. */
void pwc_sweeper_stop(pwc_sweeper *sw);

#endif
