/* Unit tests for the store deadline of mx_store: maxTimeMS set to what is
 * left of the deadline, no query once it has passed, and which failures
 * count as a timeout (the server's time limit, or any failure after the
 * deadline). No store is contacted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mx_store.h"
#include "pw_time.h"

static int setup(void **state)
{
    mongoc_init();
    unsetenv("PW_MONGO_URI");
    unsetenv("PW_MONGO_URI_FILE");
    char err[256];
    mx_store_options o = {2, 0, 1500, 300};
    *state = mx_store_new("plantwatch", &o, err, sizeof(err));
    return *state == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    mx_store_free(*state);
    mongoc_cleanup();
    return 0;
}

static void max_time_is_what_is_left(void **state)
{
    mx_store *s = *state;
    int64_t before = pw_monotonic_us();
    int64_t deadline = mx_store_deadline(s);
    assert_true(deadline >= before + 1500 * 1000);
    assert_true(deadline <= pw_monotonic_us() + 1500 * 1000);
    bson_t opts = BSON_INITIALIZER;
    char err[256] = "";
    assert_int_equal(mx_store_limit(s, &opts, deadline, err, sizeof(err)), 0);
    bson_iter_t it;
    assert_true(bson_iter_init_find(&it, &opts, "maxTimeMS"));
    assert_true(BSON_ITER_HOLDS_INT64(&it));
    int64_t ms = bson_iter_int64(&it);
    assert_true(ms >= 1 && ms <= 1500);
    assert_string_equal(err, "");
    bson_destroy(&opts);
}

static void no_deadline_sets_nothing(void **state)
{
    bson_t opts = BSON_INITIALIZER;
    char err[256];
    assert_int_equal(mx_store_limit(*state, &opts, 0, err, sizeof(err)), 0);
    assert_int_equal(bson_count_keys(&opts), 0);
    bson_destroy(&opts);
}

static void passed_deadline_sends_no_query(void **state)
{
    bson_t opts = BSON_INITIALIZER;
    char err[256];
    int64_t passed = pw_monotonic_us() - 1;
    assert_int_equal(mx_store_limit(*state, &opts, passed, err, sizeof(err)), MX_STORE_TIMEOUT);
    assert_string_equal(err, "store queries exceeded their deadline of 1500 ms");
    assert_int_equal(bson_count_keys(&opts), 0);
    /* less than a millisecond left is no time left */
    assert_int_equal(mx_store_limit(*state, &opts, pw_monotonic_us() + 500, err, sizeof(err)),
                     MX_STORE_TIMEOUT);
    bson_destroy(&opts);
}

static void failures_classified(void **state)
{
    mx_store *s = *state;
    char err[256];
    bson_error_t limit = {0};
    limit.domain = MONGOC_ERROR_SERVER;
    limit.code = 50;
    snprintf(limit.message, sizeof(limit.message), "operation exceeded time limit");
    int64_t later = pw_monotonic_us() + 60 * 1000000LL;
    assert_int_equal(mx_store_failure(s, &limit, later, err, sizeof(err)), MX_STORE_TIMEOUT);
    assert_string_equal(err, "store queries exceeded their deadline of 1500 ms "
                             "(operation exceeded time limit)");

    bson_error_t sock = {0};
    sock.domain = MONGOC_ERROR_STREAM;
    sock.code = MONGOC_ERROR_STREAM_SOCKET;
    snprintf(sock.message, sizeof(sock.message), "Failed to read 4 bytes: socket error or timeout");
    assert_int_equal(mx_store_failure(s, &sock, later, err, sizeof(err)), MX_STORE_FAILED);
    assert_string_equal(err, "store query failed: Failed to read 4 bytes: socket error or timeout");
    /* the same failure once the deadline has passed: the socket timeout behind maxTimeMS */
    assert_int_equal(mx_store_failure(s, &sock, pw_monotonic_us() - 1, err, sizeof(err)),
                     MX_STORE_TIMEOUT);
    /* a store that cannot be reached is unavailable, deadline or not */
    bson_error_t sel = {0};
    sel.domain = MONGOC_ERROR_SERVER_SELECTION;
    sel.code = MONGOC_ERROR_SERVER_SELECTION_FAILURE;
    snprintf(sel.message, sizeof(sel.message), "No suitable servers found");
    assert_int_equal(mx_store_failure(s, &sel, pw_monotonic_us() - 1, err, sizeof(err)),
                     MX_STORE_FAILED);
    assert_string_equal(err, "store query failed: No suitable servers found");
    /* without a deadline only the server's limit is a timeout */
    assert_int_equal(mx_store_failure(s, &sock, 0, err, sizeof(err)), MX_STORE_FAILED);
    assert_int_equal(mx_store_failure(s, &limit, 0, err, sizeof(err)), MX_STORE_TIMEOUT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(max_time_is_what_is_left),
        cmocka_unit_test(no_deadline_sets_nothing),
        cmocka_unit_test(passed_deadline_sends_no_query),
        cmocka_unit_test(failures_classified),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
