/* Unit tests of dq_tally: counting by reason, missing reasons, the order and
 * layout of the summary. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dq_tally.h"

static void test_counts(void **state)
{
    (void)state;
    dq_tally t;
    dq_tally_init(&t);
    const char *reasons[] = {"undecodable", "invalid", "undecodable", NULL, "", "unknown_unit"};
    for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++) {
        assert_int_equal(dq_tally_add(&t, reasons[i]), 0);
    }
    assert_int_equal(t.total, 6);
    assert_int_equal(dq_tally_count(&t, "undecodable"), 2);
    assert_int_equal(dq_tally_count(&t, "invalid"), 1);
    assert_int_equal(dq_tally_count(&t, NULL), 2);
    assert_int_equal(dq_tally_count(&t, "-"), 2);
    assert_int_equal(dq_tally_count(&t, "nope"), 0);
    dq_tally_free(&t);
    assert_int_equal(t.len, 0);
}

static void test_many_reasons_grow(void **state)
{
    (void)state;
    dq_tally t;
    dq_tally_init(&t);
    char name[32];
    for (int i = 0; i < 100; i++) {
        snprintf(name, sizeof name, "reason-%d", i % 40);
        assert_int_equal(dq_tally_add(&t, name), 0);
    }
    assert_int_equal(t.len, 40);
    assert_int_equal(dq_tally_count(&t, "reason-0"), 3);
    assert_int_equal(dq_tally_count(&t, "reason-39"), 2);
    dq_tally_free(&t);
}

static void test_print_largest_first(void **state)
{
    (void)state;
    dq_tally t;
    dq_tally_init(&t);
    dq_tally_add(&t, "b");
    dq_tally_add(&t, "unknown_unit");
    dq_tally_add(&t, "unknown_unit");
    dq_tally_add(&t, "a");
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    dq_tally_print(&t, f);
    fclose(f);
    assert_string_equal(buf, "by reason:\n"
                             "  unknown_unit  2\n"
                             "  a             1\n"
                             "  b             1\n");
    free(buf);
    dq_tally_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counts),
        cmocka_unit_test(test_many_reasons_grow),
        cmocka_unit_test(test_print_largest_first),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
