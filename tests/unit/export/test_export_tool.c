/* Unit tests for plantwatch-export: the command line, the read-key file
 * forms, the request URL and the row counting behind the progress line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ex_args.h"
#include "ex_fetch.h"
#include "ex_key.h"

static void args_parse_and_check(void **state)
{
    (void)state;
    ex_args a;
    char err[256];
    char *ok[] = {"x", "readings", "--zone", "halle", "--type", "temperature", "-o", "f.csv", "-q"};
    assert_int_equal(ex_args_parse(9, ok, &a, err, sizeof(err)), EX_PARSE_OK);
    assert_string_equal(a.kind, "readings");
    assert_string_equal(a.zone, "halle");
    assert_string_equal(a.output, "f.csv");
    assert_int_equal(a.quiet, 1);
    char *help[] = {"x", "alerts", "--help"};
    assert_int_equal(ex_args_parse(3, help, &a, err, sizeof(err)), EX_PARSE_HELP);
    char *bad1[] = {"x", "alerts", "--type", "t"};
    assert_int_equal(ex_args_parse(4, bad1, &a, err, sizeof(err)), EX_PARSE_ERROR);
    assert_string_equal(err, "--type applies to readings only");
    char *bad2[] = {"x", "readings", "--from"};
    assert_int_equal(ex_args_parse(3, bad2, &a, err, sizeof(err)), EX_PARSE_ERROR);
    assert_string_equal(err, "--from needs a value");
    char *bad3[] = {"x", "--zone", "z"};
    assert_int_equal(ex_args_parse(3, bad3, &a, err, sizeof(err)), EX_PARSE_ERROR);
    char *bad4[] = {"x", "readings", "--format", "xml"};
    assert_int_equal(ex_args_parse(4, bad4, &a, err, sizeof(err)), EX_PARSE_ERROR);
}

static void keys_from_files(void **state)
{
    (void)state;
    char key[64];
    assert_int_equal(
        ex_key_from_text("# readers\ndashboard k-123 read\nother k-9\n", key, sizeof(key)), 0);
    assert_string_equal(key, "k-123");
    assert_int_equal(ex_key_from_text("  bare-key\n", key, sizeof(key)), 0);
    assert_string_equal(key, "bare-key");
    assert_int_equal(ex_key_from_text("\n# none\n", key, sizeof(key)), -1);
    assert_int_equal(ex_key_from_text("a 0123456789", key, 8), -1);
}

static void url_escapes_values(void **state)
{
    (void)state;
    ex_args a;
    memset(&a, 0, sizeof(a));
    a.kind = "alerts";
    a.zone = "halle \xc3\xb6";
    a.from = "2026-12-01T10:00:00+01:00";
    char *url = ex_fetch_url("http://h:1/", &a);
    assert_string_equal(url, "http://h:1/v1/export/alerts?format=csv&zone=halle%20%C3%B6"
                             "&from=2026-12-01T10%3A00%3A00%2B01%3A00");
    free(url);
}

static void rows_are_counted_outside_quotes(void **state)
{
    (void)state;
    ex_count c = {0, 0, 0, 1};
    const char csv[] = "ts,message\r\n1,\"a\r\nb, \"\"c\"\"\"\r\n2,x\r\n";
    ex_count_feed(&c, csv, 10);
    ex_count_feed(&c, csv + 10, strlen(csv) - 10);
    assert_int_equal(ex_count_rows(&c), 2);
    assert_int_equal(c.bytes, strlen(csv));
    ex_count n = {0, 0, 0, 0};
    ex_count_feed(&n, "{\"m\":\"\\\"\"}\n{}\n", 15);
    assert_int_equal(ex_count_rows(&n), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(args_parse_and_check),
        cmocka_unit_test(keys_from_files),
        cmocka_unit_test(url_escapes_values),
        cmocka_unit_test(rows_are_counted_outside_quotes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
