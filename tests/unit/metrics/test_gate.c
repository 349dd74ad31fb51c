/* Unit tests for mx_gate: at most `slots` holders, refusal without a free
 * slot, a waiter served when a slot is given back within its wait. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include <cmocka.h>

#include "mx_gate.h"

static void holds_at_most_slots(void **state)
{
    (void)state;
    mx_gate *g = mx_gate_new(2);
    assert_int_equal(mx_gate_slots(g), 2);
    assert_int_equal(mx_gate_enter(g, 0), 0);
    assert_int_equal(mx_gate_enter(g, 0), 0);
    assert_int_equal(mx_gate_running(g), 2);
    assert_int_equal(mx_gate_enter(g, 0), -1);  /* full, no wait */
    assert_int_equal(mx_gate_enter(g, 20), -1); /* full for the whole wait */
    assert_int_equal(mx_gate_running(g), 2);
    mx_gate_leave(g);
    assert_int_equal(mx_gate_running(g), 1);
    assert_int_equal(mx_gate_enter(g, 0), 0);
    mx_gate_leave(g);
    mx_gate_leave(g);
    assert_int_equal(mx_gate_running(g), 0);
    mx_gate_free(g);
}

static void zero_slots_means_one(void **state)
{
    (void)state;
    mx_gate *g = mx_gate_new(0);
    assert_int_equal(mx_gate_slots(g), 1);
    assert_int_equal(mx_gate_enter(g, 0), 0);
    assert_int_equal(mx_gate_enter(g, 0), -1);
    mx_gate_leave(g);
    mx_gate_free(g);
}

static void *leave_later(void *arg)
{
    usleep(20000);
    mx_gate_leave(arg);
    return NULL;
}

static void waiter_gets_a_slot_given_back(void **state)
{
    (void)state;
    mx_gate *g = mx_gate_new(1);
    assert_int_equal(mx_gate_enter(g, 0), 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, leave_later, g), 0);
    assert_int_equal(mx_gate_enter(g, 10000), 0); /* served as soon as the holder leaves */
    pthread_join(t, NULL);
    assert_int_equal(mx_gate_running(g), 1);
    mx_gate_leave(g);
    mx_gate_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(holds_at_most_slots),
        cmocka_unit_test(zero_slots_means_one),
        cmocka_unit_test(waiter_gets_a_slot_given_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
