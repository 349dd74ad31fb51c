/* Unit tests for dedupe: the gate decisions of a batch (new deliveries
 * contribute, duplicates above their partition's settled mark are
 * uncertain), whether a stored origin is a delivery's own position, and the
 * outcome of a guarded write command in every branch. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "dedupe.h"

/* Settled marks: sensor-telemetry:0 → 100, sensor-telemetry:1 → 5, others
 * unknown (-1). Counts the calls. */
typedef struct {
    int calls;
} settled_ctx;

static int64_t settled(void *vctx, const char *topic, int32_t partition)
{
    settled_ctx *ctx = vctx;
    ctx->calls++;
    if (strcmp(topic, "sensor-telemetry") != 0) {
        return -1;
    }
    return partition == 0 ? 100 : partition == 1 ? 5 : -1;
}

static void test_gate_new_contribute_dups_above_settled_are_uncertain(void **state)
{
    (void)state;
    pwc_record r;
    memset(&r, 0, sizeof(r));
    pwc_entry e[8] = {
        {&r, "sensor-telemetry", 0, 99, 0, 0},  /* new */
        {&r, "sensor-telemetry", 0, 100, 0, 0}, /* dup at the mark: final */
        {&r, "sensor-telemetry", 0, 101, 0, 0}, /* dup above it: uncertain */
        {&r, "sensor-telemetry", 1, 4, 0, 0},   /* dup below its mark: final */
        {&r, "sensor-telemetry", 1, 6, 0, 0},   /* dup above its mark: uncertain */
        {&r, "sensor-alerts", 0, 0, 0, 0},      /* dup, mark unknown: uncertain */
        {&r, "sensor-telemetry", 0, 500, 1, 0}, /* neither: no contribution */
        {&r, "sensor-telemetry", 0, 501, 1, 0}, /* new above the mark */
    };
    int gate[8] = {
        PWC_GATE_NEW, PWC_GATE_DUP, PWC_GATE_DUP, PWC_GATE_DUP, PWC_GATE_DUP, PWC_GATE_DUP, 0,
        PWC_GATE_NEW};
    size_t uncertain[8];
    memset(uncertain, 0xff, sizeof(uncertain));
    settled_ctx ctx = {0};
    size_t m = pwc_dedupe_gate(e, 8, gate, settled, &ctx, uncertain);
    assert_int_equal(m, 3);
    assert_int_equal(uncertain[0], 2);
    assert_int_equal(uncertain[1], 4);
    assert_int_equal(uncertain[2], 5);
    assert_int_equal(uncertain[3], (size_t)-1); /* nothing written past m */
    int want[8] = {1, 0, 0, 0, 0, 0, 0, 1};
    for (int i = 0; i < 8; i++) {
        assert_int_equal(e[i].contributes, want[i]);
    }
    assert_int_equal(ctx.calls, 5); /* asked only for the duplicates */

    /* an empty batch */
    ctx.calls = 0;
    assert_int_equal(pwc_dedupe_gate(e, 0, gate, settled, &ctx, uncertain), 0);
    assert_int_equal(ctx.calls, 0);

    /* all new: every one contributes, none uncertain */
    int all_new[3] = {PWC_GATE_NEW, PWC_GATE_NEW, PWC_GATE_NEW};
    for (int i = 0; i < 3; i++) {
        e[i].contributes = 0;
    }
    assert_int_equal(pwc_dedupe_gate(e, 3, all_new, settled, &ctx, uncertain), 0);
    assert_int_equal(e[0].contributes + e[1].contributes + e[2].contributes, 3);
}

static void test_is_own_matches_the_origin_format(void **state)
{
    (void)state;
    pwc_record r;
    memset(&r, 0, sizeof(r));
    pwc_entry e = {&r, "sensor-telemetry", 2, 17, 0, 0};
    char origin[PWC_ORIGIN_LEN];
    pwc_origin_format(e.topic, e.partition, e.offset, origin, sizeof(origin));
    assert_string_equal(origin, "sensor-telemetry:2:17");
    assert_int_equal(pwc_dedupe_is_own(&e, origin), 1);
    assert_int_equal(pwc_dedupe_is_own(&e, "sensor-telemetry:2:17"), 1);
    assert_int_equal(pwc_dedupe_is_own(&e, NULL), 0); /* not found */
    assert_int_equal(pwc_dedupe_is_own(&e, ""), 0);
    assert_int_equal(pwc_dedupe_is_own(&e, "sensor-telemetry:2:18"), 0);  /* other offset */
    assert_int_equal(pwc_dedupe_is_own(&e, "sensor-telemetry:2:170"), 0); /* no prefix match */
    assert_int_equal(pwc_dedupe_is_own(&e, "sensor-telemetry:1:17"), 0);  /* other partition */
    assert_int_equal(pwc_dedupe_is_own(&e, "sensor-alerts:2:17"), 0);     /* other topic */

    /* dots (and '$') in the topic are stored as '_' */
    pwc_entry d = {&r, "plant.sensor$telemetry", 0, 9000000000LL, 0, 0};
    pwc_origin_format(d.topic, d.partition, d.offset, origin, sizeof(origin));
    assert_string_equal(origin, "plant_sensor_telemetry:0:9000000000");
    assert_int_equal(pwc_dedupe_is_own(&d, "plant_sensor_telemetry:0:9000000000"), 1);
    assert_int_equal(pwc_dedupe_is_own(&d, "plant.sensor$telemetry:0:9000000000"), 0);
}

static void test_guard_outcome_every_branch(void **state)
{
    (void)state;
    /* every write landed */
    assert_int_equal(pwc_guard_outcome_of(3, 3, 0, 0, 0), PWC_GUARD_LANDED);
    assert_int_equal(pwc_guard_outcome_of(0, 0, 0, 0, 0), PWC_GUARD_LANDED); /* inserts only */
    assert_int_equal(pwc_guard_outcome_of(2, 5, 0, 0, 0), PWC_GUARD_LANDED);
    /* a guarded update matched nothing: lost a race */
    assert_int_equal(pwc_guard_outcome_of(3, 2, 0, 0, 0), PWC_GUARD_LOST);
    assert_int_equal(pwc_guard_outcome_of(1, 0, 0, 0, 0), PWC_GUARD_LOST);
    assert_int_equal(pwc_guard_outcome_of(1, -1, 0, 0, 0), PWC_GUARD_LOST);
    /* an insert of a new document hit an existing _id: lost a race */
    assert_int_equal(pwc_guard_outcome_of(3, 3, 1, 0, 0), PWC_GUARD_LOST);
    assert_int_equal(pwc_guard_outcome_of(0, 0, 4, 0, 0), PWC_GUARD_LOST);
    /* the store refused a stale update: lost, even when the command also failed */
    assert_int_equal(pwc_guard_outcome_of(3, 3, 0, 1, 0), PWC_GUARD_LOST);
    assert_int_equal(pwc_guard_outcome_of(3, 0, 0, 1, 1), PWC_GUARD_LOST);
    /* any other failure: retry the batch, whatever matched */
    assert_int_equal(pwc_guard_outcome_of(3, 3, 0, 0, 1), PWC_GUARD_FAILED);
    assert_int_equal(pwc_guard_outcome_of(3, 0, 2, 0, 1), PWC_GUARD_FAILED);
    assert_int_equal(pwc_guard_outcome_of(0, 0, 0, 0, 1), PWC_GUARD_FAILED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gate_new_contribute_dups_above_settled_are_uncertain),
        cmocka_unit_test(test_is_own_matches_the_origin_format),
        cmocka_unit_test(test_guard_outcome_every_branch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
