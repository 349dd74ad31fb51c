/* Unit tests of sim_options: defaults, every option, the errors a user sees
 * for bad input, environment defaults, and API key files and lists. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sim_options.h"

#define ARGV(...) ((char *[]){"run", __VA_ARGS__, NULL})
#define ARGC(...) ((int)(sizeof((char *[]){"run", __VA_ARGS__}) / sizeof(char *)))

static char err[512];

static int setup_env(void **state)
{
    (void)state;
    unsetenv("PW_SIM_URL");
    unsetenv("PW_SIM_KEYS");
    unsetenv("PW_SIM_METRICS_URL");
    unsetenv("PW_STATE");
    unsetenv("PW_ROOT");
    err[0] = '\0';
    return 0;
}

static int parse(int argc, char **argv, pw_sim_run_opts *o)
{
    return pw_sim_parse_run(argc, argv, o, err, sizeof err);
}

static void test_defaults(void **state)
{
    (void)state;
    pw_sim_run_opts o;
    char *argv[] = {"run", NULL};
    assert_int_equal(parse(1, argv, &o), PW_SIM_PARSE_OK);
    assert_string_equal(o.url, "http://127.0.0.1:8000");
    assert_int_equal(o.devices, 50);
    assert_string_equal(o.device_prefix, "dev");
    assert_int_equal(o.zones, 5);
    assert_float_equal(o.rate, 20.0, 0);
    assert_float_equal(o.duration, 30.0, 0);
    assert_float_equal(o.alert_share, 0.05, 0);
    assert_int_equal(o.batch, 1);
    assert_string_equal(o.keys_file, ".plantwatch/secrets/gateway-keys");
    assert_false(o.keys_file_set);
    assert_false(o.seed_set);
    assert_float_equal(o.key_limit, 5.0, 0);
    assert_int_equal(o.retries, 5);
    assert_false(o.json);
}

static void test_all_options(void **state)
{
    (void)state;
    pw_sim_run_opts o;
    char **argv = ARGV("--devices", "12", "--device-prefix", "t-1", "--zones=3", "--rate", "7.5",
                       "--duration", "0", "--alert-share", "0.5", "--batch", "10", "--keys-file",
                       "/tmp/k", "--url", "http://gw:9000/", "--seed", "18446744073709551615",
                       "--progress", "0", "--key-limit", "8", "--timeout", "2.5", "--retries", "0",
                       "--max-in-flight", "4", "--json");
    int argc = ARGC("--devices", "12", "--device-prefix", "t-1", "--zones=3", "--rate", "7.5",
                    "--duration", "0", "--alert-share", "0.5", "--batch", "10", "--keys-file",
                    "/tmp/k", "--url", "http://gw:9000/", "--seed", "18446744073709551615",
                    "--progress", "0", "--key-limit", "8", "--timeout", "2.5", "--retries", "0",
                    "--max-in-flight", "4", "--json");
    assert_int_equal(parse(argc, argv, &o), PW_SIM_PARSE_OK);
    assert_int_equal(o.devices, 12);
    assert_string_equal(o.device_prefix, "t-1");
    assert_int_equal(o.zones, 3);
    assert_float_equal(o.rate, 7.5, 0);
    assert_float_equal(o.duration, 0, 0);
    assert_float_equal(o.alert_share, 0.5, 0);
    assert_int_equal(o.batch, 10);
    assert_string_equal(o.keys_file, "/tmp/k");
    assert_true(o.keys_file_set);
    assert_string_equal(o.url, "http://gw:9000"); /* trailing slash dropped */
    assert_true(o.seed_set);
    assert_true(o.seed == UINT64_MAX);
    assert_float_equal(o.progress, 0, 0);
    assert_float_equal(o.key_limit, 8, 0);
    assert_float_equal(o.timeout, 2.5, 0);
    assert_int_equal(o.retries, 0);
    assert_int_equal(o.max_in_flight, 4);
    assert_true(o.json);
}

/* argv {"run", opt, value} must fail with a message containing want. */
static void expect_error(const char *opt, const char *value, const char *want)
{
    pw_sim_run_opts o;
    char *argv[] = {"run", (char *)opt, (char *)value, NULL};
    int argc = value ? 3 : 2;
    err[0] = '\0';
    assert_int_equal(parse(argc, argv, &o), PW_SIM_PARSE_ERROR);
    if (!strstr(err, want)) {
        fail_msg("%s %s: error '%s' does not mention '%s'", opt, value ? value : "", err, want);
    }
}

static void test_errors(void **state)
{
    (void)state;
    expect_error("--rate", "0", "--rate: expected messages/second > 0");
    expect_error("--rate", "fast", "got 'fast'");
    expect_error("--rate", "nan", "--rate");
    expect_error("--rate", "20x", "got '20x'");
    expect_error("--batch", "0", "--batch: expected an integer 1..1000");
    expect_error("--batch", "1001", "--batch");
    expect_error("--batch", "2.5", "--batch");
    expect_error("--devices", "-3", "--devices");
    expect_error("--device-prefix", "a b", "--device-prefix");
    expect_error("--device-prefix", "", "--device-prefix");
    expect_error("--alert-share", "1.5", "--alert-share: expected a fraction 0..1");
    expect_error("--duration", "-1", "--duration");
    expect_error("--seed", "-1", "--seed");
    expect_error("--url", "ftp://x", "--url: expected http://host:port");
    expect_error("--key-limit", "0", "--key-limit");
    expect_error("--retries", "101", "--retries");
    expect_error("--bogus", NULL, "unknown option '--bogus'");
    expect_error("-x", NULL, "unknown option '-x'");
    expect_error("--rate", NULL, "option '--rate' needs a value");
    expect_error("extra", NULL, "unexpected argument 'extra'");
}

static void test_zones_cannot_exceed_devices(void **state)
{
    (void)state;
    pw_sim_run_opts o;
    char *argv[] = {"run", "--devices", "4", "--zones", "5", NULL};
    assert_int_equal(parse(5, argv, &o), PW_SIM_PARSE_ERROR);
    assert_string_equal(err, "--zones (5) cannot exceed --devices (4)");
}

static void test_help(void **state)
{
    (void)state;
    pw_sim_run_opts o;
    pw_sim_report_opts r;
    char *argv[] = {"run", "--rate", "3", "--help", NULL};
    assert_int_equal(parse(4, argv, &o), PW_SIM_PARSE_HELP);
    char *rargv[] = {"report", "-h", NULL};
    assert_int_equal(pw_sim_parse_report(2, rargv, &r, err, sizeof err), PW_SIM_PARSE_HELP);
    /* the help documents every option and variable */
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    pw_sim_run_help(f);
    pw_sim_report_help(f);
    fclose(f);
    static const char *const words[] = {
        "--devices",      "--device-prefix",   "--zones",     "--rate",          "--duration",
        "--alert-share",  "--batch",           "--keys-file", "--url",           "--seed",
        "--key-limit",    "--retries",         "--timeout",   "--max-in-flight", "--progress",
        "--json",         "PW_SIM_URL",        "PW_SIM_KEYS", "PW_STATE",        "--metrics-url",
        "--require-data", "PW_SIM_METRICS_URL"};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        if (!strstr(buf, words[i])) {
            fail_msg("help does not mention %s", words[i]);
        }
    }
    free(buf);
}

static void test_environment_defaults(void **state)
{
    (void)state;
    pw_sim_run_opts o;
    char *argv[] = {"run", NULL};
    setenv("PW_SIM_URL", "http://10.0.0.1:8000", 1);
    setenv("PW_ROOT", "/srv/pw", 1);
    assert_int_equal(parse(1, argv, &o), PW_SIM_PARSE_OK);
    assert_string_equal(o.url, "http://10.0.0.1:8000");
    assert_string_equal(o.keys_file, "/srv/pw/.plantwatch/secrets/gateway-keys");
    setenv("PW_STATE", "/var/lib/pw", 1);
    assert_int_equal(parse(1, argv, &o), PW_SIM_PARSE_OK);
    assert_string_equal(o.keys_file, "/var/lib/pw/secrets/gateway-keys");
    setenv("PW_SIM_URL", "localhost:8000", 1);
    assert_int_equal(parse(1, argv, &o), PW_SIM_PARSE_ERROR);
    assert_non_null(strstr(err, "PW_SIM_URL"));
}

static void test_report_options(void **state)
{
    (void)state;
    pw_sim_report_opts r;
    char *a1[] = {"report", NULL};
    assert_int_equal(pw_sim_parse_report(1, a1, &r, err, sizeof err), PW_SIM_PARSE_OK);
    assert_string_equal(r.url, "http://127.0.0.1:8090");
    assert_false(r.require_data);
    char *a2[] = {"report", "--metrics-url", "http://m:1/", "--require-data", "--timeout", "3",
                  NULL};
    assert_int_equal(pw_sim_parse_report(6, a2, &r, err, sizeof err), PW_SIM_PARSE_OK);
    assert_string_equal(r.url, "http://m:1");
    assert_true(r.require_data);
    assert_float_equal(r.timeout, 3, 0);
    char *a3[] = {"report", "--metrics-url", "m:1", NULL};
    assert_int_equal(pw_sim_parse_report(3, a3, &r, err, sizeof err), PW_SIM_PARSE_ERROR);
    assert_non_null(strstr(err, "--metrics-url"));
    char *a4[] = {"report", "--rate", "3", NULL};
    assert_int_equal(pw_sim_parse_report(3, a4, &r, err, sizeof err), PW_SIM_PARSE_ERROR);
    assert_string_equal(err, "unknown option '--rate'");
}

static void test_keys_text(void **state)
{
    (void)state;
    pw_sim_keys k = {0};
    assert_int_equal(pw_sim_keys_parse_text("# gateway keys\nsensor-a  AAA\n\n\tsensor-b BBB \r\n"
                                            "sensor-c CCC",
                                            &k, err, sizeof err),
                     0);
    assert_int_equal(k.len, 3);
    assert_string_equal(k.items[0].name, "sensor-a");
    assert_string_equal(k.items[0].key, "AAA");
    assert_string_equal(k.items[1].name, "sensor-b");
    assert_string_equal(k.items[1].key, "BBB");
    assert_string_equal(k.items[2].key, "CCC");
    pw_sim_keys_free(&k);

    assert_int_equal(pw_sim_keys_parse_text("sensor-a AAA\nlonely\n", &k, err, sizeof err), -1);
    assert_string_equal(err, "line 2: expected `<consumer> <key>`");
    assert_int_equal(k.len, 0);
    assert_int_equal(pw_sim_keys_parse_text("a b c\n", &k, err, sizeof err), -1);
    assert_int_equal(pw_sim_keys_parse_text("# nothing\n\n", &k, err, sizeof err), -1);
    assert_string_equal(err, "no API keys");
}

static void test_keys_list(void **state)
{
    (void)state;
    pw_sim_keys k = {0};
    assert_int_equal(pw_sim_keys_parse_list(" k1, k2,,k3 ", &k, err, sizeof err), 0);
    assert_int_equal(k.len, 3);
    assert_string_equal(k.items[0].key, "k1");
    assert_string_equal(k.items[0].name, "key1");
    assert_string_equal(k.items[1].key, "k2");
    assert_string_equal(k.items[2].key, "k3");
    assert_string_equal(k.items[2].name, "key3");
    pw_sim_keys_free(&k);
    assert_int_equal(pw_sim_keys_parse_list(" , ", &k, err, sizeof err), -1);
}

static void test_keys_load_precedence(void **state)
{
    (void)state;
    char path[] = "/tmp/pw-sim-keys-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "sensor-a FILEKEY\n", 17), 17);
    close(fd);
    pw_sim_run_opts o;
    pw_sim_keys k;
    char *argv[] = {"run", "--keys-file", path, NULL};

    setenv("PW_SIM_KEYS", "ENV1,ENV2", 1);
    char *plain[] = {"run", NULL};
    assert_int_equal(parse(1, plain, &o), PW_SIM_PARSE_OK);
    assert_int_equal(pw_sim_keys_load(&o, &k, err, sizeof err), 0);
    assert_int_equal(k.len, 2); /* no --keys-file: the environment wins over the default file */
    assert_string_equal(k.items[1].key, "ENV2");
    assert_string_equal(k.source, "PW_SIM_KEYS");
    pw_sim_keys_free(&k);

    assert_int_equal(parse(3, argv, &o), PW_SIM_PARSE_OK);
    assert_int_equal(pw_sim_keys_load(&o, &k, err, sizeof err), 0);
    assert_int_equal(k.len, 1); /* an explicit --keys-file wins */
    assert_string_equal(k.items[0].name, "sensor-a");
    assert_string_equal(k.items[0].key, "FILEKEY");
    pw_sim_keys_free(&k);
    unlink(path);

    assert_int_equal(pw_sim_keys_load(&o, &k, err, sizeof err), -1);
    assert_non_null(strstr(err, "No such file"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_defaults, setup_env),
        cmocka_unit_test_setup(test_all_options, setup_env),
        cmocka_unit_test_setup(test_errors, setup_env),
        cmocka_unit_test_setup(test_zones_cannot_exceed_devices, setup_env),
        cmocka_unit_test_setup(test_help, setup_env),
        cmocka_unit_test_setup(test_environment_defaults, setup_env),
        cmocka_unit_test_setup(test_report_options, setup_env),
        cmocka_unit_test_setup(test_keys_text, setup_env),
        cmocka_unit_test_setup(test_keys_list, setup_env),
        cmocka_unit_test_setup(test_keys_load_precedence, setup_env),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
