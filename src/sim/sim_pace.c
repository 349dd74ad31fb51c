/* sim_pace: per-key spacing, request schedule and retry backoff (see sim_pace.h). */
#include "sim_pace.h"

#include <math.h>
#include <stdlib.h>

#define PW_SIM_BACKOFF_BASE_US 250000LL
#define PW_SIM_BACKOFF_MAX_US 8000000LL
#define PW_SIM_MAX_DEBT_US 1000000LL
#define PW_SIM_MAX_BATCH 1000u

int64_t pw_sim_key_interval_us(double key_limit)
{
    if (!(key_limit > 0)) {
        key_limit = PW_SIM_DEFAULT_KEY_LIMIT;
    }
    /* rounded to the microsecond: 5 req/s gives 220000 us, well above 1e6 / limit */
    return (int64_t)llround(1e6 / key_limit * (1.0 + PW_SIM_KEY_MARGIN));
}

void pw_sim_plan_compute(double rate, unsigned batch, size_t nkeys, double key_limit,
                         pw_sim_plan *out)
{
    if (batch == 0) {
        batch = 1;
    }
    out->req_rate = rate / batch;
    out->key_req_rate = 1e6 / (double)pw_sim_key_interval_us(key_limit);
    out->keys_needed = (unsigned)ceil(out->req_rate / out->key_req_rate - 1e-9);
    if (out->keys_needed == 0) {
        out->keys_needed = 1;
    }
    out->max_msg_rate = (double)nkeys * out->key_req_rate * batch;
    out->feasible = nkeys > 0 && out->keys_needed <= nkeys;
    out->suggested_batch = 0;
    if (nkeys > 0) {
        double b = ceil(rate / ((double)nkeys * out->key_req_rate) - 1e-9);
        if (b < 1) {
            b = 1;
        }
        if (b <= PW_SIM_MAX_BATCH) {
            out->suggested_batch = (unsigned)b;
        }
    }
}

int pw_sim_keysched_init(pw_sim_keysched *ks, size_t nkeys, double key_limit)
{
    ks->nkeys = nkeys;
    ks->interval_us = pw_sim_key_interval_us(key_limit);
    ks->next_us = calloc(nkeys ? nkeys : 1, sizeof *ks->next_us);
    ks->last_us = calloc(nkeys ? nkeys : 1, sizeof *ks->last_us);
    ks->sent = calloc(nkeys ? nkeys : 1, sizeof *ks->sent);
    if (!ks->next_us || !ks->last_us || !ks->sent) {
        pw_sim_keysched_free(ks);
        return -1;
    }
    for (size_t i = 0; i < nkeys; i++) {
        ks->next_us[i] = INT64_MIN;
        ks->last_us[i] = INT64_MIN;
    }
    return 0;
}

void pw_sim_keysched_free(pw_sim_keysched *ks)
{
    free(ks->next_us);
    free(ks->last_us);
    free(ks->sent);
    ks->next_us = ks->last_us = NULL;
    ks->sent = NULL;
    ks->nkeys = 0;
}

static void pw_sim_keysched_take(pw_sim_keysched *ks, size_t key, int64_t now_us)
{
    ks->last_us[key] = now_us;
    ks->next_us[key] = now_us + ks->interval_us;
    ks->sent[key]++;
}

int pw_sim_keysched_acquire(pw_sim_keysched *ks, int64_t now_us)
{
    int best = -1;
    for (size_t i = 0; i < ks->nkeys; i++) {
        if (ks->next_us[i] > now_us) {
            continue;
        }
        if (best < 0 || ks->last_us[i] < ks->last_us[best]) {
            best = (int)i;
        }
    }
    if (best >= 0) {
        pw_sim_keysched_take(ks, (size_t)best, now_us);
    }
    return best;
}

int pw_sim_keysched_acquire_key(pw_sim_keysched *ks, size_t key, int64_t now_us)
{
    if (key >= ks->nkeys || ks->next_us[key] > now_us) {
        return -1;
    }
    pw_sim_keysched_take(ks, key, now_us);
    return 0;
}

int64_t pw_sim_keysched_next_ready(const pw_sim_keysched *ks)
{
    int64_t t = INT64_MAX;
    for (size_t i = 0; i < ks->nkeys; i++) {
        if (ks->next_us[i] < t) {
            t = ks->next_us[i];
        }
    }
    return t;
}

void pw_sim_keysched_hold(pw_sim_keysched *ks, size_t key, int64_t until_us)
{
    if (key < ks->nkeys && ks->next_us[key] < until_us) {
        ks->next_us[key] = until_us;
    }
}

void pw_sim_pacer_init(pw_sim_pacer *p, double req_rate, int64_t start_us)
{
    p->interval_us = req_rate > 0 ? (int64_t)llround(1e6 / req_rate) : INT64_MAX / 4;
    if (p->interval_us < 1) {
        p->interval_us = 1;
    }
    p->next_due_us = start_us;
}

int pw_sim_pacer_due(const pw_sim_pacer *p, int64_t now_us)
{
    return now_us >= p->next_due_us;
}

void pw_sim_pacer_advance(pw_sim_pacer *p, int64_t now_us)
{
    p->next_due_us += p->interval_us;
    if (p->next_due_us < now_us - PW_SIM_MAX_DEBT_US) {
        p->next_due_us = now_us;
    }
}

int64_t pw_sim_backoff_us(unsigned attempt, long retry_after_s, double jitter01)
{
    int64_t d = PW_SIM_BACKOFF_BASE_US;
    for (unsigned i = 1; i < attempt && d < PW_SIM_BACKOFF_MAX_US; i++) {
        d *= 2;
    }
    if (d > PW_SIM_BACKOFF_MAX_US) {
        d = PW_SIM_BACKOFF_MAX_US;
    }
    if (retry_after_s > 0 && retry_after_s * 1000000LL > d) {
        d = retry_after_s * 1000000LL;
    }
    if (jitter01 < 0) {
        jitter01 = 0;
    }
    if (jitter01 >= 1) {
        jitter01 = 0.999;
    }
    return d + (int64_t)(d * 0.2 * jitter01);
}
