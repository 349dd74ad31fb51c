/* Unit tests of dq_args: each subcommand's options, both value forms, help,
 * and the messages a user sees for bad input. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dq_args.h"

#define ARGC(...) ((int)(sizeof((char *[]){"plantwatch-dlq", __VA_ARGS__}) / sizeof(char *)))
#define PARSE(a, err, ...)                                                                         \
    dq_args_parse(ARGC(__VA_ARGS__), (char *[]){"plantwatch-dlq", __VA_ARGS__, NULL}, (a), (err),  \
                  sizeof(err))

static void test_list_defaults(void **state)
{
    (void)state;
    dq_args a;
    char err[256] = "";
    assert_int_equal(PARSE(&a, err, "list"), DQ_PARSE_OK);
    assert_int_equal(a.cmd, DQ_CMD_LIST);
    assert_null(a.reason);
    assert_null(a.topic);
    assert_int_equal(a.limit, 0);
    assert_false(a.json);
    assert_false(a.dry_run);
}

static void test_list_all_options(void **state)
{
    (void)state;
    dq_args a;
    char err[256] = "";
    assert_int_equal(PARSE(&a, err, "list", "--reason", "undecodable", "--topic=sensor-alerts",
                           "--limit", "25", "--json"),
                     DQ_PARSE_OK);
    assert_string_equal(a.reason, "undecodable");
    assert_string_equal(a.topic, "sensor-alerts");
    assert_int_equal(a.limit, 25);
    assert_true(a.json);
}

static void test_replay_options(void **state)
{
    (void)state;
    dq_args a;
    char err[256] = "";
    assert_int_equal(PARSE(&a, err, "replay", "--reason=store_timeout", "--dry-run", "--limit=1"),
                     DQ_PARSE_OK);
    assert_int_equal(a.cmd, DQ_CMD_REPLAY);
    assert_string_equal(a.reason, "store_timeout");
    assert_true(a.dry_run);
    assert_int_equal(a.limit, 1);
}

static void test_help(void **state)
{
    (void)state;
    dq_args a;
    char err[256] = "";
    assert_int_equal(PARSE(&a, err, "--help"), DQ_PARSE_HELP);
    assert_int_equal(a.cmd, DQ_CMD_NONE);
    assert_int_equal(PARSE(&a, err, "replay", "--reason", "x", "-h"), DQ_PARSE_HELP);
    assert_int_equal(a.cmd, DQ_CMD_REPLAY);
    assert_int_equal(PARSE(&a, err, "list", "--help"), DQ_PARSE_HELP);
    assert_int_equal(a.cmd, DQ_CMD_LIST);
}

static void expect_error(int rc, const char *err, const char *want)
{
    assert_int_equal(rc, DQ_PARSE_ERROR);
    if (strstr(err, want) == NULL) {
        fail_msg("\"%s\" does not mention \"%s\"", err, want);
    }
}

static void test_errors(void **state)
{
    (void)state;
    dq_args a;
    char err[256] = "";
    expect_error(dq_args_parse(1, (char *[]){"plantwatch-dlq", NULL}, &a, err, sizeof err), err,
                 "subcommand is required");
    expect_error(PARSE(&a, err, "purge"), err, "unknown subcommand \"purge\"");
    expect_error(PARSE(&a, err, "list", "--bogus"), err, "unknown option \"--bogus\"");
    expect_error(PARSE(&a, err, "list", "extra"), err, "unknown argument \"extra\"");
    expect_error(PARSE(&a, err, "list", "--dry-run"), err, "--dry-run is not an option of list");
    expect_error(PARSE(&a, err, "replay", "--json"), err, "--json is not an option of replay");
    expect_error(PARSE(&a, err, "list", "--reason"), err, "--reason needs a value");
    expect_error(PARSE(&a, err, "list", "--reason="), err, "must not be empty");
    expect_error(PARSE(&a, err, "list", "--json=yes"), err, "--json takes no value");
}

static void test_limit_must_be_positive(void **state)
{
    (void)state;
    dq_args a;
    char err[256] = "";
    const char *bad[] = {"0", "-1", "+3", "3x", "", " 4", "99999999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = PARSE(&a, err, "list", "--limit", (char *)bad[i]);
        assert_int_equal(rc, DQ_PARSE_ERROR);
    }
    assert_int_equal(PARSE(&a, err, "list", "--limit", "7"), DQ_PARSE_OK);
    assert_int_equal(a.limit, 7);
}

static void test_help_texts(void **state)
{
    (void)state;
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    dq_args_usage(f);
    dq_args_help(DQ_CMD_LIST, f);
    dq_args_help(DQ_CMD_REPLAY, f);
    fclose(f);
    assert_non_null(strstr(buf, "plantwatch-dlq list [--reason R]"));
    assert_non_null(strstr(buf, "pw-dlq-replayed-from"));
    assert_non_null(strstr(buf, "PW_TOPIC_DLQ"));
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list_defaults),  cmocka_unit_test(test_list_all_options),
        cmocka_unit_test(test_replay_options), cmocka_unit_test(test_help),
        cmocka_unit_test(test_errors),         cmocka_unit_test(test_limit_must_be_positive),
        cmocka_unit_test(test_help_texts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
