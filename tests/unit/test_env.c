/* Unit test for pw_env: string defaults, range-checked integers with error
 * messages naming the variable, and secrets from NAME_FILE or NAME. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pw_env.h"

static void test_str(void **state)
{
    (void)state;
    unsetenv("PW_TEST_STR");
    assert_string_equal(pw_env_str("PW_TEST_STR", "dflt"), "dflt");
    assert_null(pw_env_str("PW_TEST_STR", NULL));
    setenv("PW_TEST_STR", "", 1);
    assert_string_equal(pw_env_str("PW_TEST_STR", "dflt"), "dflt");
    setenv("PW_TEST_STR", "producer-1", 1);
    assert_string_equal(pw_env_str("PW_TEST_STR", "dflt"), "producer-1");
    unsetenv("PW_TEST_STR");
}

static void test_long(void **state)
{
    (void)state;
    long v = -7;
    char err[128] = "";
    unsetenv("PW_TEST_PORT");
    assert_int_equal(pw_env_long("PW_TEST_PORT", 8081, 1, 65535, &v, err, sizeof err), 0);
    assert_int_equal(v, 8081);

    static const struct {
        const char *in;
        int rc;
        long want;
        const char *err;
    } cases[] = {
        {"9000", 0, 9000, ""},
        {"1", 0, 1, ""},
        {"65535", 0, 65535, ""},
        {"+42", 0, 42, ""},
        {"0", -1, 0, "PW_TEST_PORT: 0 out of range [1, 65535]"},
        {"65536", -1, 0, "PW_TEST_PORT: 65536 out of range [1, 65535]"},
        {"-3", -1, 0, "PW_TEST_PORT: -3 out of range [1, 65535]"},
        {"80x", -1, 0, "PW_TEST_PORT: not an integer: \"80x\""},
        {"abc", -1, 0, "PW_TEST_PORT: not an integer: \"abc\""},
        {"1.5", -1, 0, "PW_TEST_PORT: not an integer: \"1.5\""},
        {" 80", -1, 0, "PW_TEST_PORT: not an integer: \" 80\""},
        {"99999999999999999999999", -1, 0,
         "PW_TEST_PORT: not an integer: \"99999999999999999999999\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        setenv("PW_TEST_PORT", cases[i].in, 1);
        v = -7;
        err[0] = '\0';
        int rc = pw_env_long("PW_TEST_PORT", 8081, 1, 65535, &v, err, sizeof err);
        if (rc != cases[i].rc) {
            fail_msg("%s: rc %d", cases[i].in, rc);
        }
        assert_string_equal(err, cases[i].err);
        if (rc == 0) {
            assert_int_equal(v, cases[i].want);
        } else {
            assert_int_equal(v, -7); /* untouched on error */
        }
    }
    unsetenv("PW_TEST_PORT");
}

static void test_secret(void **state)
{
    (void)state;
    char path[] = "/tmp/pw_env_secret_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "s3cr3t pass\n", 12), 12);
    close(fd);

    unsetenv("PW_TEST_SECRET");
    unsetenv("PW_TEST_SECRET_FILE");
    assert_null(pw_env_secret("PW_TEST_SECRET"));

    setenv("PW_TEST_SECRET", "from-env", 1);
    char *s = pw_env_secret("PW_TEST_SECRET");
    assert_string_equal(s, "from-env");
    free(s);

    setenv("PW_TEST_SECRET_FILE", path, 1); /* the file wins */
    s = pw_env_secret("PW_TEST_SECRET");
    assert_string_equal(s, "s3cr3t pass");
    free(s);

    setenv("PW_TEST_SECRET_FILE", "/nonexistent/secret", 1);
    assert_null(pw_env_secret("PW_TEST_SECRET")); /* a named but missing file is an error */

    unsetenv("PW_TEST_SECRET_FILE");
    unsetenv("PW_TEST_SECRET");
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_str),
        cmocka_unit_test(test_long),
        cmocka_unit_test(test_secret),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
