/* Unit tests for mx_semver: semantic-version precedence of firmware strings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "mx_semver.h"

#define assert_order(older, newer)                                                                 \
    do {                                                                                           \
        assert_true(mx_semver_cmp(older, newer) < 0);                                              \
        assert_true(mx_semver_cmp(newer, older) > 0);                                              \
    } while (0)

static void numeric_components_compare_as_numbers(void **state)
{
    (void)state;
    assert_order("1.9.0", "1.10.0");
    assert_order("1.2.9", "1.2.10");
    assert_order("2.0.0", "10.0.0");
    assert_order("0.9.9", "1.0.0");
    assert_int_equal(mx_semver_cmp("1.2.3", "1.2.3"), 0);
}

static void prefix_and_short_forms(void **state)
{
    (void)state;
    assert_int_equal(mx_semver_cmp("v1.2.3", "1.2.3"), 0);
    assert_int_equal(mx_semver_cmp("1.2", "1.2.0"), 0);
    assert_int_equal(mx_semver_cmp("2", "2.0.0"), 0);
    assert_order("1.2", "1.2.1");
}

static void prereleases_rank_below_their_release(void **state)
{
    (void)state;
    /* the example chain from semver.org §11 */
    const char *chain[] = {"1.0.0-alpha",  "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta",
                           "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1",       "1.0.0"};
    for (size_t i = 0; i + 1 < sizeof(chain) / sizeof(chain[0]); i++) {
        assert_order(chain[i], chain[i + 1]);
    }
    assert_order("0.9.0", "1.0.0-rc.1");
}

static void build_metadata_is_ignored(void **state)
{
    (void)state;
    assert_int_equal(mx_semver_cmp("1.2.3+build.5", "1.2.3+build.9"), 0);
    assert_int_equal(mx_semver_cmp("1.2.3+abc", "1.2.3"), 0);
}

static void invalid_strings_rank_below_versions(void **state)
{
    (void)state;
    assert_false(mx_semver_valid(""));
    assert_false(mx_semver_valid("latest"));
    assert_false(mx_semver_valid("1.2.3.4"));
    assert_false(mx_semver_valid("1..2"));
    assert_false(mx_semver_valid("1.2.3-"));
    assert_false(mx_semver_valid("1.2.3+"));
    assert_false(mx_semver_valid("1.2.x"));
    assert_true(mx_semver_valid("1.2.3-rc.1+sha.5114f85"));
    assert_order("latest", "0.0.1");
    assert_order("", "0.0.0");
    assert_order("abc", "abd"); /* both invalid: byte order */
    assert_int_equal(mx_semver_cmp(NULL, NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(numeric_components_compare_as_numbers),
        cmocka_unit_test(prefix_and_short_forms),
        cmocka_unit_test(prereleases_rank_below_their_release),
        cmocka_unit_test(build_metadata_is_ignored),
        cmocka_unit_test(invalid_strings_rank_below_versions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
