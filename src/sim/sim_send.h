/* sim_send: the run loop of plantwatch-sim. Owns the libcurl multi handle
 * and every request in flight: builds request bodies from the fleet on the
 * pacer's schedule, takes a ready API key for each, sends them concurrently
 * over kept-alive connections, classifies answers into the run's counters,
 * retries 429/503 with backoff on the same key, prints progress, and stops
 * cleanly at the end of the duration or on a signal. */
#ifndef PW_SIM_SEND_H
#define PW_SIM_SEND_H

#include <signal.h>

#include "sim_options.h"
#include "sim_stats.h"

/* Runs until the duration is over or *stop becomes non-zero (1: stop sending
 * and finish requests in flight; 2 or more: abort them too). Progress lines go
 * to progress (NULL: none). Returns 0 when the run happened (see stats), -1
 * when it could not start (message in err). */
int pw_sim_run(const pw_sim_run_opts *o, const pw_sim_keys *keys, volatile sig_atomic_t *stop,
               FILE *progress, pw_sim_stats *stats, char *err, size_t errlen);

/* Accepted message count from a 202 body {"accepted": n, …}; fallback when
 * the body does not say. */
long pw_sim_accepted_count(const char *body, long fallback);

/* "HTTP 400 /v1/telemetry: <error.message or message or body>" into out. */
void pw_sim_describe_error(long status, const char *path, const char *body, char *out, size_t n);

#endif
