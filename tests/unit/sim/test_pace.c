/* Unit tests of sim_pace: the pacing math, the per-key limit under every
 * schedule (never more than the limit in any one-second window), even
 * spreading over keys, holds after 429, the request schedule and backoff. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "sim_gen.h"
#include "sim_pace.h"

#define SEC 1000000LL

static void test_key_interval(void **state)
{
    (void)state;
    assert_int_equal(pw_sim_key_interval_us(5.0), 220000);
    assert_int_equal(pw_sim_key_interval_us(10.0), 110000);
    assert_int_equal(pw_sim_key_interval_us(0.0), 220000); /* invalid: the gateway default */
}

static void test_plan_infeasible_suggests_batch(void **state)
{
    (void)state;
    pw_sim_plan p;
    pw_sim_plan_compute(20.0, 1, 3, 5.0, &p);
    assert_float_equal(p.req_rate, 20.0, 1e-9);
    assert_float_equal(p.key_req_rate, 1e6 / 220000.0, 1e-9);
    assert_int_equal(p.keys_needed, 5);
    assert_false(p.feasible);
    assert_int_equal(p.suggested_batch, 2);
    assert_float_equal(p.max_msg_rate, 3 * 1e6 / 220000.0, 1e-9);

    pw_sim_plan_compute(20.0, 2, 3, 5.0, &p);
    assert_true(p.feasible);
    assert_int_equal(p.keys_needed, 3);

    pw_sim_plan_compute(1000.0, 10, 3, 5.0, &p);
    assert_false(p.feasible);
    assert_int_equal(p.suggested_batch, 74); /* 1000 / (3 * 4.545…) = 73.3 */
    pw_sim_plan_compute(1000.0, 74, 3, 5.0, &p);
    assert_true(p.feasible);
}

static void test_plan_exact_fit(void **state)
{
    (void)state;
    pw_sim_plan p;
    /* 4 keys * 4.545… req/s = 18.18 req/s: 18 req/s fits, 19 does not */
    pw_sim_plan_compute(18.0, 1, 4, 5.0, &p);
    assert_true(p.feasible);
    assert_int_equal(p.keys_needed, 4);
    pw_sim_plan_compute(19.0, 1, 4, 5.0, &p);
    assert_false(p.feasible);
    assert_int_equal(p.keys_needed, 5);
    pw_sim_plan_compute(5.0, 1, 0, 5.0, &p);
    assert_false(p.feasible);
    assert_int_equal(p.suggested_batch, 0);
}

/* Largest number of sends of one key within any window of `window` µs. */
static int max_in_window(const int64_t *t, size_t n, int64_t window)
{
    int best = 0;
    size_t lo = 0;
    for (size_t hi = 0; hi < n; hi++) {
        while (t[hi] - t[lo] >= window) {
            lo++;
        }
        if ((int)(hi - lo + 1) > best) {
            best = (int)(hi - lo + 1);
        }
    }
    return best;
}

/* Largest number of sends of one key in one aligned second (the gateway's windows). */
static int max_in_aligned_second(const int64_t *t, size_t n)
{
    int best = 0, run = 0;
    for (size_t i = 0; i < n; i++) {
        run = (i > 0 && t[i] / SEC == t[i - 1] / SEC) ? run + 1 : 1;
        if (run > best) {
            best = run;
        }
    }
    return best;
}

/* Drives pacer + key scheduler with a demand far above capacity and random
 * loop wake-ups; records every send per key. */
static void simulate(size_t nkeys, double rate, unsigned batch, uint64_t seed, int64_t dur,
                     int64_t **sends, size_t *counts)
{
    pw_sim_keysched ks;
    pw_sim_pacer p;
    pw_sim_rng rng;
    pw_sim_rng_seed(&rng, seed);
    assert_int_equal(pw_sim_keysched_init(&ks, nkeys, 5.0), 0);
    int64_t start = 7 * SEC + 123456; /* not aligned to a second */
    pw_sim_pacer_init(&p, rate / batch, start);
    for (size_t k = 0; k < nkeys; k++) {
        sends[k] = calloc((size_t)(dur / SEC + 2) * 10, sizeof(int64_t));
        counts[k] = 0;
    }
    for (int64_t now = start; now < start + dur;) {
        while (pw_sim_pacer_due(&p, now)) {
            int key = pw_sim_keysched_acquire(&ks, now);
            if (key < 0) {
                break;
            }
            pw_sim_pacer_advance(&p, now);
            sends[key][counts[key]++] = now;
        }
        now += 1 + (int64_t)(pw_sim_rng_uniform(&rng) * 30000); /* 0..30 ms */
    }
    pw_sim_keysched_free(&ks);
}

static void test_never_more_than_limit_per_key(void **state)
{
    (void)state;
    const double rates[] = {5, 20, 60, 500};
    for (size_t nkeys = 1; nkeys <= 4; nkeys++) {
        for (size_t r = 0; r < sizeof rates / sizeof rates[0]; r++) {
            int64_t *sends[4];
            size_t counts[4];
            simulate(nkeys, rates[r], 1, 11 + nkeys, 60 * SEC, sends, counts);
            size_t total = 0;
            for (size_t k = 0; k < nkeys; k++) {
                assert_true(max_in_window(sends[k], counts[k], SEC) <= 5);
                assert_true(max_in_aligned_second(sends[k], counts[k]) <= 5);
                /* consecutive sends of a key are at least the spacing apart */
                for (size_t i = 1; i < counts[k]; i++) {
                    assert_true(sends[k][i] - sends[k][i - 1] >= 220000);
                }
                total += counts[k];
            }
            /* the rate is reached when the keys allow it, capped otherwise */
            double want = rates[r] * 60;
            double cap = nkeys * 60 * (1e6 / 220000.0);
            double expect = want < cap ? want : cap;
            assert_true(total <= (size_t)expect + nkeys);
            assert_true((double)total >= expect * 0.93);
            /* even spread: keys differ by a few requests at most */
            for (size_t k = 1; k < nkeys; k++) {
                assert_true(labs((long)counts[k] - (long)counts[0]) <= 3);
            }
            for (size_t k = 0; k < nkeys; k++) {
                free(sends[k]);
            }
        }
    }
}

static void test_lru_key_choice(void **state)
{
    (void)state;
    pw_sim_keysched ks;
    assert_int_equal(pw_sim_keysched_init(&ks, 3, 5.0), 0);
    assert_int_equal(pw_sim_keysched_acquire(&ks, 0), 0);
    assert_int_equal(pw_sim_keysched_acquire(&ks, 1), 1);
    assert_int_equal(pw_sim_keysched_acquire(&ks, 2), 2);
    assert_int_equal(pw_sim_keysched_acquire(&ks, 3), -1); /* all three used within 220 ms */
    assert_int_equal(pw_sim_keysched_next_ready(&ks), 220000);
    assert_int_equal(pw_sim_keysched_acquire(&ks, 219999), -1);
    assert_int_equal(pw_sim_keysched_acquire(&ks, 300000), 0); /* all ready: least recent */
    assert_int_equal(pw_sim_keysched_acquire(&ks, 300000), 1);
    assert_int_equal(ks.sent[0], 2);
    assert_int_equal(ks.sent[2], 1);
    pw_sim_keysched_free(&ks);
}

static void test_hold_after_429(void **state)
{
    (void)state;
    pw_sim_keysched ks;
    assert_int_equal(pw_sim_keysched_init(&ks, 2, 5.0), 0);
    assert_int_equal(pw_sim_keysched_acquire_key(&ks, 0, 0), 0);
    pw_sim_keysched_hold(&ks, 0, 1 * SEC);
    assert_int_equal(pw_sim_keysched_acquire_key(&ks, 0, 500000), -1);
    assert_int_equal(pw_sim_keysched_acquire(&ks, 500000), 1); /* the other key serves */
    assert_int_equal(pw_sim_keysched_acquire(&ks, 600000), -1);
    assert_int_equal(pw_sim_keysched_acquire_key(&ks, 0, 1 * SEC), 0);
    /* a hold never shortens the spacing */
    pw_sim_keysched_hold(&ks, 0, 1 * SEC + 1);
    assert_int_equal(ks.next_us[0], 1 * SEC + 220000);
    assert_int_equal(pw_sim_keysched_acquire_key(&ks, 5, 2 * SEC), -1); /* no such key */
    pw_sim_keysched_free(&ks);
}

static void test_pacer_schedule_and_debt(void **state)
{
    (void)state;
    pw_sim_pacer p;
    pw_sim_pacer_init(&p, 4.0, 1000);
    assert_int_equal(p.interval_us, 250000);
    assert_true(pw_sim_pacer_due(&p, 1000));
    pw_sim_pacer_advance(&p, 1000);
    assert_false(pw_sim_pacer_due(&p, 250999));
    assert_true(pw_sim_pacer_due(&p, 251000));
    /* a stall of 5 s: the backlog is dropped, not burst out */
    pw_sim_pacer_advance(&p, 5 * SEC);
    assert_int_equal(p.next_due_us, 5 * SEC);
    pw_sim_pacer_advance(&p, 5 * SEC);
    assert_false(pw_sim_pacer_due(&p, 5 * SEC + 1));
}

static void test_backoff(void **state)
{
    (void)state;
    assert_int_equal(pw_sim_backoff_us(1, 0, 0.0), 250000);
    assert_int_equal(pw_sim_backoff_us(2, 0, 0.0), 500000);
    assert_int_equal(pw_sim_backoff_us(4, 0, 0.0), 2000000);
    assert_int_equal(pw_sim_backoff_us(30, 0, 0.0), 8000000); /* capped */
    assert_int_equal(pw_sim_backoff_us(1, 1, 0.0), 1000000);  /* Retry-After wins */
    assert_int_equal(pw_sim_backoff_us(1, 20, 0.0), 20000000);
    assert_int_equal(pw_sim_backoff_us(1, 0, 0.5), 275000); /* jitter up to 20 % */
    assert_true(pw_sim_backoff_us(1, 0, 5.0) < 300000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_interval),
        cmocka_unit_test(test_plan_infeasible_suggests_batch),
        cmocka_unit_test(test_plan_exact_fit),
        cmocka_unit_test(test_never_more_than_limit_per_key),
        cmocka_unit_test(test_lru_key_choice),
        cmocka_unit_test(test_hold_after_429),
        cmocka_unit_test(test_pacer_schedule_and_debt),
        cmocka_unit_test(test_backoff),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
