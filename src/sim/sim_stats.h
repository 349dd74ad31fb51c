/* sim_stats: the counters of a simulator run and how they are shown: the
 * progress line (stderr), the final summary (text or JSON, stdout) and the
 * exit status they imply. All counts are messages unless named requests. */
#ifndef PW_SIM_STATS_H
#define PW_SIM_STATS_H

#include <stdint.h>
#include <stdio.h>

typedef struct {
    uint64_t sent;     /* messages whose request finished: accepted + rejected + failed */
    uint64_t accepted; /* answered 202 */
    uint64_t rejected; /* answered 4xx (429 after the last retry) */
    uint64_t failed;   /* answered 5xx or lost to a network error */
    uint64_t readings; /* messages sent that were readings / alerts */
    uint64_t alerts;
    uint64_t requests;  /* HTTP requests made, retries included */
    uint64_t retries;   /* requests repeated after 429/503 */
    uint64_t throttled; /* 429 answers */
    uint64_t in_flight; /* messages in requests not finished yet */
    double elapsed_s;   /* since the first request */
    uint64_t seed;
    char last_error[512]; /* most recent rejection or failure, for the summary */
} pw_sim_stats;

/* Messages per second over the run (0 before any time passed). */
double pw_sim_stats_rate(const pw_sim_stats *s);
void pw_sim_stats_progress(const pw_sim_stats *s, FILE *out);
void pw_sim_stats_summary(const pw_sim_stats *s, FILE *out);
void pw_sim_stats_summary_json(const pw_sim_stats *s, FILE *out);
/* 0 when nothing was rejected or failed, else 1. */
int pw_sim_stats_exit_code(const pw_sim_stats *s);

#endif
