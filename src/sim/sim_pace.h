/* sim_pace: request pacing for plantwatch-sim. Owns the arithmetic that turns
 * a message rate and batch size into requests per second, spreads requests
 * over API keys so no key exceeds the gateway's per-key limit, the global
 * request schedule, and the retry backoff after 429/503. Pure functions of
 * the times they are given, so the guarantees are unit-tested. */
#ifndef PW_SIM_PACE_H
#define PW_SIM_PACE_H

#include <stddef.h>
#include <stdint.h>

/* Safety margin on the per-key spacing: network jitter must not push two
 * requests of one key into the same one-second window at the gateway. */
#define PW_SIM_KEY_MARGIN 0.10
#define PW_SIM_DEFAULT_KEY_LIMIT 5.0 /* gateway rate-limiting: 5 requests/second per key */

/* What a run needs from its keys and what it can reach. */
typedef struct {
    double req_rate;          /* requests/s needed: rate / batch */
    double key_req_rate;      /* requests/s one key is used for (limit less the margin) */
    unsigned keys_needed;     /* keys needed for req_rate */
    double max_msg_rate;      /* messages/s reachable with the given keys and batch */
    unsigned suggested_batch; /* smallest batch that reaches rate with the given keys */
    int feasible;             /* 1 when the given keys reach the rate */
} pw_sim_plan;

/* Minimum spacing between two requests of one key, in microseconds. */
int64_t pw_sim_key_interval_us(double key_limit);

void pw_sim_plan_compute(double rate, unsigned batch, size_t nkeys, double key_limit,
                         pw_sim_plan *out);

/* Per-key spacing: a key may send again interval_us after its last request
 * (or after a hold set by a 429). Among ready keys the least recently used
 * is chosen, so load spreads evenly. */
typedef struct {
    size_t nkeys;
    int64_t interval_us;
    int64_t *next_us; /* earliest time each key may send */
    int64_t *last_us; /* last send of each key (INT64_MIN: never) */
    uint64_t *sent;   /* requests sent per key */
} pw_sim_keysched;

int pw_sim_keysched_init(pw_sim_keysched *ks, size_t nkeys, double key_limit);
void pw_sim_keysched_free(pw_sim_keysched *ks);
/* Takes the least recently used ready key at now_us; -1 when none is ready. */
int pw_sim_keysched_acquire(pw_sim_keysched *ks, int64_t now_us);
/* Takes key if it is ready at now_us (0), else -1. */
int pw_sim_keysched_acquire_key(pw_sim_keysched *ks, size_t key, int64_t now_us);
/* Earliest time any key is ready. */
int64_t pw_sim_keysched_next_ready(const pw_sim_keysched *ks);
/* Keeps key unused until until_us (the gateway said Retry-After). */
void pw_sim_keysched_hold(pw_sim_keysched *ks, size_t key, int64_t until_us);

/* Global request schedule: request k is due at start + k * interval. A
 * backlog older than one second (keys could not keep up) is dropped instead
 * of being sent as a burst, so the rate is capped, never exceeded. */
typedef struct {
    int64_t interval_us;
    int64_t next_due_us;
} pw_sim_pacer;

void pw_sim_pacer_init(pw_sim_pacer *p, double req_rate, int64_t start_us);
int pw_sim_pacer_due(const pw_sim_pacer *p, int64_t now_us);
void pw_sim_pacer_advance(pw_sim_pacer *p, int64_t now_us);

/* Delay before retry number attempt (1-based) of a request answered 429/503:
 * exponential from 250 ms, capped at 8 s, never less than Retry-After
 * (retry_after_s, 0 when absent), plus up to 20 % jitter (jitter01 in [0,1)). */
int64_t pw_sim_backoff_us(unsigned attempt, long retry_after_s, double jitter01);

#endif
