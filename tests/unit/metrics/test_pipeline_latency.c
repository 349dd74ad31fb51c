/* Unit tests for the pipeline's latency histogram (pw_pipeline.h): bucket
 * bounds, packing, merging and quantiles within the stated precision. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "pw_pipeline.h"

static void buckets_hold_their_bounds(void **state)
{
    (void)state;
    assert_int_equal(pw_lat_bucket(-5), 0);
    assert_int_equal(pw_lat_bucket(0), 0);
    assert_int_equal(pw_lat_bucket(1), 1); /* [1, 1.19) */
    assert_int_equal(pw_lat_bucket(2), 5); /* [2, 2.38) */
    assert_int_equal(pw_lat_bucket(3), 7); /* [2.83, 3.36) */
    assert_int_equal(pw_lat_bucket(1024), 41);
    assert_int_equal(pw_lat_bucket(1023), 40);
    assert_int_equal(pw_lat_bucket(INT64_C(1) << 24), PW_LAT_BUCKETS - 1);
    assert_int_equal(pw_lat_bucket((INT64_C(1) << 24) - 1), PW_LAT_BUCKETS - 2);
    assert_int_equal(pw_lat_bucket(INT64_MAX), PW_LAT_BUCKETS - 1);
    for (int64_t ms = 1; ms < 5000000; ms = ms * 5 / 4 + 1) {
        int b = pw_lat_bucket(ms);
        assert_true((double)ms >= pw_lat_lower(b));
        assert_true((double)ms < pw_lat_upper(b));
    }
}

static void pack_round_trip_drops_trailing_zeros(void **state)
{
    (void)state;
    pw_lat_hist h, back;
    memset(&h, 0, sizeof(h));
    memset(&back, 0, sizeof(back));
    uint8_t buf[PW_LAT_PACKED_MAX];
    assert_int_equal(pw_lat_pack(&h, buf), 0);
    pw_lat_add(&h, 0, 3);
    pw_lat_add(&h, 1024, 70000);
    size_t len = pw_lat_pack(&h, buf);
    assert_int_equal(len, 42 * 4);
    assert_int_equal(buf[41 * 4], 70000 & 0xff);
    assert_int_equal(buf[41 * 4 + 1], (70000 >> 8) & 0xff);
    assert_int_equal(buf[41 * 4 + 2], 70000 >> 16);
    assert_int_equal(pw_lat_unpack_add(&back, buf, len), 0);
    assert_int_equal(back.total, 70003);
    assert_int_equal(back.counts[0], 3);
    assert_int_equal(back.counts[41], 70000);
    assert_int_equal(pw_lat_unpack_add(&back, buf, 3), -1);
    assert_int_equal(pw_lat_unpack_add(&back, buf, PW_LAT_PACKED_MAX + 4), -1);
    assert_int_equal(back.total, 70003);
}

static void merge_and_quantiles(void **state)
{
    (void)state;
    pw_lat_hist a, b;
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    assert_true(pw_lat_quantile(&a, 0.5) == 0.0);
    for (int64_t ms = 1; ms <= 100; ms++) {
        pw_lat_add(ms <= 50 ? &a : &b, ms * 10, 1); /* 10, 20, ..., 1000 ms */
    }
    pw_lat_merge(&a, &b);
    assert_int_equal(a.total, 100);
    /* the 50th smallest is 500 ms, the 99th 990 ms: within a factor 2^(1/8) */
    double p50 = pw_lat_quantile(&a, 0.5), p99 = pw_lat_quantile(&a, 0.99);
    assert_true(p50 >= 500 / 1.0906 && p50 <= 500 * 1.0906);
    assert_true(p99 >= 990 / 1.0906 && p99 <= 990 * 1.0906);
    /* exactly the geometric middle of 500's bucket */
    int k = pw_lat_bucket(500);
    assert_true(fabs(p50 - sqrt(pw_lat_lower(k) * pw_lat_upper(k))) < 1e-9);
    assert_true(pw_lat_quantile(&a, 1.0) >= 1000 / 1.0906);

    pw_lat_hist c;
    memset(&c, 0, sizeof(c));
    pw_lat_add(&c, 0, 1);
    assert_true(pw_lat_quantile(&c, 0.99) == 0.5);
    pw_lat_add(&c, INT64_C(1) << 30, 99);
    assert_true(pw_lat_quantile(&c, 0.5) == pw_lat_lower(PW_LAT_BUCKETS - 1));
    assert_true(pw_lat_quantile(&c, 0.01) == 0.5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(buckets_hold_their_bounds),
        cmocka_unit_test(pack_round_trip_drops_trailing_zeros),
        cmocka_unit_test(merge_and_quantiles),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
