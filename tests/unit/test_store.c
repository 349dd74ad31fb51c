/* Unit tests for pw_store's functions that need no server: the shape of a
 * query filter, packing a protobuf message into a BSON binary field and
 * unpacking it (round trip; absent, non-binary and undecodable fields), the
 * query-plan check being a no-op when disabled (and logging each shape once
 * when enabled, against a server that is not there), and the client URI
 * from the environment. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "iot/v1/storage.pb-c.h"
#include "pw_log.h"
#include "pw_store.h"

/* ---- filter shapes ------------------------------------------------------------- */

static void assert_shape(const bson_t *filter, const char *want)
{
    char out[256];
    memset(out, 'X', sizeof(out));
    pw_store_filter_shape(filter, out, sizeof(out));
    assert_string_equal(out, want);
}

static void test_filter_shape(void **state)
{
    (void)state;
    bson_t *f = BCON_NEW("_id", "x", "_v", BCON_INT64(3));
    assert_shape(f, "{_id,_v}");
    bson_destroy(f);

    f = BCON_NEW("ts", "{", "$lt", BCON_DATE_TIME(1795600800000LL), "}");
    assert_shape(f, "{ts:$lt}");
    bson_destroy(f);

    /* several operators of one field, in order, then the next field */
    f = BCON_NEW("ts", "{", "$gte", BCON_INT64(1), "$lt", BCON_INT64(2), "}", "tp", "t:0");
    assert_shape(f, "{ts:$gte:$lt,tp}");
    bson_destroy(f);

    /* an embedded document that is no operator document: the field alone */
    f = BCON_NEW("meta", "{", "device", "d1", "}");
    assert_shape(f, "{meta}");
    bson_destroy(f);
    /* mixed: only the operators */
    f = BCON_NEW("a", "{", "$exists", BCON_BOOL(true), "x", BCON_INT32(1), "}");
    assert_shape(f, "{a:$exists}");
    bson_destroy(f);

    /* values are never part of the shape */
    f = BCON_NEW("_id", "{", "$in", "[", "a", "b", "c", "]", "}");
    assert_shape(f, "{_id:$in}");
    bson_destroy(f);
    f = BCON_NEW("_id", "{", "$in", "[", "other", "]", "}");
    assert_shape(f, "{_id:$in}");
    bson_destroy(f);

    /* an array (not a document) is not looked into */
    f = BCON_NEW("$or", "[", "{", "a", BCON_INT32(1), "}", "{", "b", BCON_INT32(2), "}", "]");
    assert_shape(f, "{$or}");
    bson_destroy(f);

    /* empty and absent filters */
    bson_t empty = BSON_INITIALIZER;
    assert_shape(&empty, "{}");
    bson_destroy(&empty);
    assert_shape(NULL, "{}");
}

static void test_filter_shape_truncates_within_outlen(void **state)
{
    (void)state;
    bson_t *f = BCON_NEW("_id", "x", "_v", BCON_INT64(3));
    char out[16];
    for (size_t outlen = 1; outlen <= 9; outlen++) {
        memset(out, 'X', sizeof(out));
        pw_store_filter_shape(f, out, outlen);
        /* the longest prefix of "{_id,_v}" that fits, terminated */
        assert_int_equal(strlen(out), outlen - 1);
        assert_memory_equal(out, "{_id,_v}", outlen - 1);
        for (size_t i = outlen; i < sizeof(out); i++) {
            assert_int_equal(out[i], 'X'); /* nothing written past outlen */
        }
    }
    bson_destroy(f);
}

/* ---- packed state -------------------------------------------------------------------- */

static void test_packed_round_trip(void **state)
{
    (void)state;
    Iot__V1__DeviceEntry e1 = IOT__V1__DEVICE_ENTRY__INIT, e2 = IOT__V1__DEVICE_ENTRY__INIT;
    e1.device_id = "dev-1";
    e1.zone = "zone-a";
    e1.firmware = "1.2.3";
    e1.first_seen_ms = 1795600800000LL;
    e1.last_seen_ms = 1795600900000LL;
    e2.device_id = "dev-2";
    e2.zone = "zone-b";
    e2.firmware = "";
    e2.first_seen_ms = -5;
    e2.last_seen_ms = 0;
    Iot__V1__DeviceEntry *entries[] = {&e1, &e2};
    Iot__V1__DeviceCensus m = IOT__V1__DEVICE_CENSUS__INIT;
    m.n_devices = 2;
    m.devices = entries;

    bson_t doc = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&doc, "_id", "x");
    assert_int_equal(pw_store_append_packed(&doc, "state", &m.base), 0);

    /* a binary field (subtype 0) holding exactly the packed message */
    size_t want_len = protobuf_c_message_get_packed_size(&m.base);
    uint8_t *want = malloc(want_len);
    assert_non_null(want);
    protobuf_c_message_pack(&m.base, want);
    bson_iter_t it;
    assert_true(bson_iter_init_find(&it, &doc, "state"));
    assert_true(BSON_ITER_HOLDS_BINARY(&it));
    bson_subtype_t sub;
    uint32_t len = 0;
    const uint8_t *data = NULL;
    bson_iter_binary(&it, &sub, &len, &data);
    assert_int_equal(sub, BSON_SUBTYPE_BINARY);
    assert_int_equal(len, want_len);
    assert_memory_equal(data, want, want_len);
    free(want);

    int bad = 0;
    Iot__V1__DeviceCensus *back = (Iot__V1__DeviceCensus *)pw_store_unpack(
        &doc, "state", &iot__v1__device_census__descriptor, &bad);
    assert_non_null(back);
    assert_int_equal(bad, 0);
    assert_int_equal(back->n_devices, 2);
    assert_string_equal(back->devices[0]->device_id, "dev-1");
    assert_string_equal(back->devices[0]->zone, "zone-a");
    assert_string_equal(back->devices[0]->firmware, "1.2.3");
    assert_int_equal(back->devices[0]->first_seen_ms, 1795600800000LL);
    assert_int_equal(back->devices[0]->last_seen_ms, 1795600900000LL);
    assert_string_equal(back->devices[1]->device_id, "dev-2");
    assert_string_equal(back->devices[1]->firmware, "");
    assert_int_equal(back->devices[1]->first_seen_ms, -5);
    assert_int_equal(back->devices[1]->last_seen_ms, 0);
    protobuf_c_message_free_unpacked(&back->base, NULL);

    /* an empty message packs to an empty binary that unpacks again */
    Iot__V1__RollupState empty = IOT__V1__ROLLUP_STATE__INIT;
    assert_int_equal(pw_store_append_packed(&doc, "empty", &empty.base), 0);
    assert_true(bson_iter_init_find(&it, &doc, "empty"));
    assert_true(BSON_ITER_HOLDS_BINARY(&it));
    bson_iter_binary(&it, &sub, &len, &data);
    assert_int_equal(len, 0);
    Iot__V1__RollupState *e = (Iot__V1__RollupState *)pw_store_unpack(
        &doc, "empty", &iot__v1__rollup_state__descriptor, &bad);
    assert_non_null(e);
    assert_int_equal(bad, 0);
    assert_int_equal(e->n_cells, 0);
    assert_int_equal(e->n_devices, 0);
    protobuf_c_message_free_unpacked(&e->base, NULL);
    bson_destroy(&doc);
}

static void test_unpack_absent_bad_and_garbage(void **state)
{
    (void)state;
    bson_t *doc = BCON_NEW("_id", "x", "text", "not binary", "num", BCON_INT64(7));
    static const uint8_t truncated[] = {0x0a, 0x20, 0x0a, 0x03, 'd', 'e', 'v'};
    static const uint8_t bad_wire[] = {0x0f};
    BSON_APPEND_BINARY(doc, "truncated", BSON_SUBTYPE_BINARY, truncated, sizeof(truncated));
    BSON_APPEND_BINARY(doc, "wire", BSON_SUBTYPE_BINARY, bad_wire, sizeof(bad_wire));

    /* absent: NULL, *bad left alone */
    int bad = 0;
    assert_null(pw_store_unpack(doc, "state", &iot__v1__device_census__descriptor, &bad));
    assert_int_equal(bad, 0);
    bad = 7;
    assert_null(pw_store_unpack(doc, "state", &iot__v1__device_census__descriptor, &bad));
    assert_int_equal(bad, 7);

    /* present but not binary */
    bad = 0;
    assert_null(pw_store_unpack(doc, "text", &iot__v1__device_census__descriptor, &bad));
    assert_int_equal(bad, 1);
    bad = 0;
    assert_null(pw_store_unpack(doc, "num", &iot__v1__device_census__descriptor, &bad));
    assert_int_equal(bad, 1);

    /* binary that does not decode */
    bad = 0;
    assert_null(pw_store_unpack(doc, "truncated", &iot__v1__device_census__descriptor, &bad));
    assert_int_equal(bad, 1);
    bad = 0;
    assert_null(pw_store_unpack(doc, "wire", &iot__v1__rollup_state__descriptor, &bad));
    assert_int_equal(bad, 1);
    bson_destroy(doc);
}

/* ---- the query-plan check -------------------------------------------------------------- */

typedef struct {
    pw_store_plans *plans;
    mongoc_collection_t *coll;
    const bson_t *filter;
} check_args;

static check_args args;

/* Runs fn with stderr redirected to a file; returns what was written. */
static char *capture(void (*fn)(void))
{
    char path[] = "/tmp/pw_store_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    fflush(stderr);
    int saved = dup(2);
    dup2(fd, 2);
    fn();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    off_t len = lseek(fd, 0, SEEK_END);
    char *buf = calloc(1, (size_t)len + 1);
    assert_non_null(buf);
    assert_int_equal(pread(fd, buf, (size_t)len, 0), len);
    close(fd);
    unlink(path);
    return buf;
}

static void check_once(void)
{
    pw_store_plan_check(args.plans, args.coll, args.filter, "unit test", PW_QUERY_FILTERED);
}

static size_t count_of(const char *s, const char *what)
{
    size_t n = 0;
    for (const char *p = strstr(s, what); p; p = strstr(p + 1, what)) {
        n++;
    }
    return n;
}

static void test_plan_check_disabled_is_a_no_op(void **state)
{
    (void)state;
    bson_t *filter = BCON_NEW("_id", "x");
    /* disabled: returns before it looks at the collection (NULL here) */
    pw_store_plans *off = pw_store_plans_new(0);
    assert_non_null(off);
    args = (check_args){off, NULL, filter};
    char *out = capture(check_once);
    assert_string_equal(out, "");
    free(out);
    /* no registry at all: the same */
    args = (check_args){NULL, NULL, filter};
    out = capture(check_once);
    assert_string_equal(out, "");
    free(out);
    pw_store_plans_free(off);
    pw_store_plans_free(NULL);
    bson_destroy(filter);
}

static void test_plan_check_enabled_logs_each_shape_once(void **state)
{
    (void)state;
    /* nothing listens on port 1: the explain fails at once, and the plan is
     * logged as unknown */
    mongoc_client_t *client = mongoc_client_new(
        "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=200&connectTimeoutMS=200");
    assert_non_null(client);
    mongoc_collection_t *coll = mongoc_client_get_collection(client, "pw_unit", "things");
    pw_store_plans *on = pw_store_plans_new(1);
    assert_non_null(on);
    bson_t *by_id = BCON_NEW("_id", "x");
    bson_t *by_id2 = BCON_NEW("_id", "y"); /* the same shape */
    bson_t *by_ts = BCON_NEW("ts", "{", "$lt", BCON_INT64(5), "}");

    args = (check_args){on, coll, by_id};
    char *out = capture(check_once);
    assert_int_equal(count_of(out, "\"event\":\"store_query_plan\""), 1);
    assert_int_equal(count_of(out, "\"collection\":\"things\""), 1);
    assert_int_equal(count_of(out, "\"shape\":\"{_id}\""), 1);
    assert_int_equal(count_of(out, "\"purpose\":\"unit test\""), 1);
    assert_int_equal(count_of(out, "\"plan\":\"unknown\""), 1);
    assert_int_equal(count_of(out, "\"whole\":false"), 1);
    free(out);

    /* a shape already checked is not checked again */
    args = (check_args){on, coll, by_id2};
    out = capture(check_once);
    assert_string_equal(out, "");
    free(out);

    /* another shape is */
    args = (check_args){on, coll, by_ts};
    out = capture(check_once);
    assert_int_equal(count_of(out, "\"event\":\"store_query_plan\""), 1);
    assert_int_equal(count_of(out, "\"shape\":\"{ts:$lt}\""), 1);
    free(out);

    bson_destroy(by_ts);
    bson_destroy(by_id2);
    bson_destroy(by_id);
    pw_store_plans_free(on);
    mongoc_collection_destroy(coll);
    mongoc_client_destroy(client);
}

/* ---- the client URI --------------------------------------------------------------------- */

static void test_uri_from_env(void **state)
{
    (void)state;
    char err[256] = "";
    unsetenv("PW_MONGO_URI_FILE");
    unsetenv("PW_MONGO_URI");
    mongoc_uri_t *uri = pw_store_uri_from_env(1500, 4000, err, sizeof(err));
    assert_non_null(uri);
    const mongoc_host_list_t *h = mongoc_uri_get_hosts(uri);
    assert_string_equal(h->host, "127.0.0.1");
    assert_int_equal(h->port, 27017);
    assert_int_equal(mongoc_uri_get_option_as_int32(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, 0),
                     1500);
    assert_int_equal(mongoc_uri_get_option_as_int32(uri, MONGOC_URI_CONNECTTIMEOUTMS, 0), 2000);
    assert_int_equal(mongoc_uri_get_option_as_int32(uri, MONGOC_URI_SOCKETTIMEOUTMS, 0), 4000);
    mongoc_uri_destroy(uri);

    /* timeouts the URI sets are kept */
    setenv("PW_MONGO_URI", "mongodb://store.example:27018/?connectTimeoutMS=50", 1);
    uri = pw_store_uri_from_env(1500, 4000, err, sizeof(err));
    assert_non_null(uri);
    h = mongoc_uri_get_hosts(uri);
    assert_string_equal(h->host, "store.example");
    assert_int_equal(h->port, 27018);
    assert_int_equal(mongoc_uri_get_option_as_int32(uri, MONGOC_URI_CONNECTTIMEOUTMS, 0), 50);
    assert_int_equal(mongoc_uri_get_option_as_int32(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, 0),
                     1500);
    mongoc_uri_destroy(uri);

    /* an invalid URI: the message does not repeat it (it may hold a password) */
    setenv("PW_MONGO_URI", "mongodb://user:hunter2@/bad?", 1);
    mongoc_log_set_handler(NULL, NULL); /* mongoc's own complaint is not ours to show */
    assert_null(pw_store_uri_from_env(1500, 4000, err, sizeof(err)));
    mongoc_log_set_handler(mongoc_log_default_handler, NULL);
    assert_string_equal(err, "PW_MONGO_URI is not a valid MongoDB URI");
    assert_null(strstr(err, "hunter2"));

    /* a URI file that cannot be read */
    setenv("PW_MONGO_URI_FILE", "/nonexistent/pw-mongo-uri", 1);
    assert_null(pw_store_uri_from_env(1500, 4000, err, sizeof(err)));
    assert_string_equal(err, "PW_MONGO_URI_FILE: cannot read /nonexistent/pw-mongo-uri");
    unsetenv("PW_MONGO_URI_FILE");
    unsetenv("PW_MONGO_URI");
}

int main(void)
{
    mongoc_init();
    pw_log_init("unit", "unit-1", "info");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_filter_shape),
        cmocka_unit_test(test_filter_shape_truncates_within_outlen),
        cmocka_unit_test(test_packed_round_trip),
        cmocka_unit_test(test_unpack_absent_bad_and_garbage),
        cmocka_unit_test(test_plan_check_disabled_is_a_no_op),
        cmocka_unit_test(test_plan_check_enabled_logs_each_shape_once),
        cmocka_unit_test(test_uri_from_env),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    mongoc_cleanup();
    return rc;
}
