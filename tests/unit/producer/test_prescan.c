/* Unit tests for the PublishRequest wire pre-scan: valid requests pass with
 * exact counts, bounds (items, field occurrences) and malformed or NUL-holding
 * inputs are refused before decoding, at the boundaries. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ingest.h"
#include "prescan.h"

static size_t pack_request(const Iot__V1__PublishRequest *req, uint8_t **out)
{
    size_t len = iot__v1__publish_request__get_packed_size(req);
    *out = malloc(len + 1);
    iot__v1__publish_request__pack(req, *out);
    return len;
}

/* n readings and m alerts, packed. */
static size_t build(size_t n, size_t m, uint8_t **out)
{
    Iot__V1__PublishRequest req = IOT__V1__PUBLISH_REQUEST__INIT;
    Iot__V1__Reading r = IOT__V1__READING__INIT;
    Iot__V1__Alert a = IOT__V1__ALERT__INIT;
    r.device_id = "dev";
    r.zone = "z";
    r.type = "t";
    r.value = 1.5;
    r.ts_ms = 1700000000000;
    a.device_id = "dev";
    a.severity = IOT__V1__SEVERITY__SEVERITY_WARNING;
    a.message = "m";
    Iot__V1__Reading **rs = calloc(n + 1, sizeof(*rs));
    Iot__V1__Alert **as = calloc(m + 1, sizeof(*as));
    for (size_t i = 0; i < n; i++) {
        rs[i] = &r;
    }
    for (size_t i = 0; i < m; i++) {
        as[i] = &a;
    }
    req.n_readings = n;
    req.readings = rs;
    req.n_alerts = m;
    req.alerts = as;
    req.idempotency_key = "key-1";
    size_t len = pack_request(&req, out);
    free(rs);
    free(as);
    return len;
}

static pw_prescan_rc scan(const uint8_t *buf, size_t len, pw_prescan_result *res)
{
    return pw_prescan_publish_request(buf, len, res);
}

static void test_valid_requests_are_counted(void **state)
{
    (void)state;
    uint8_t *buf;
    pw_prescan_result res;
    size_t len = build(3, 2, &buf);
    assert_int_equal(scan(buf, len, &res), PW_PRESCAN_OK);
    assert_int_equal(res.readings, 3);
    assert_int_equal(res.alerts, 2);
    assert_string_equal(res.message, "");
    free(buf);
    assert_int_equal(scan((const uint8_t *)"", 0, &res), PW_PRESCAN_OK); /* empty: decoder says */
    assert_int_equal(res.readings + res.alerts, 0);
}

static void test_item_limit_boundary(void **state)
{
    (void)state;
    uint8_t *buf;
    pw_prescan_result res;
    size_t len = build(600, 400, &buf); /* exactly 1000 */
    assert_int_equal(scan(buf, len, &res), PW_PRESCAN_OK);
    free(buf);
    len = build(600, 401, &buf);
    assert_int_equal(scan(buf, len, &res), PW_PRESCAN_TOO_MANY);
    assert_string_equal(res.message, "readings/alerts: at most 1000 messages per request");
    free(buf);
}

/* 1.5 M empty readings (3 MB): refused after counting 1001 of them. */
static void test_empty_reading_bomb(void **state)
{
    (void)state;
    size_t n = 1500000;
    uint8_t *buf = malloc(2 * n);
    for (size_t i = 0; i < n; i++) {
        buf[2 * i] = 0x0a;
        buf[2 * i + 1] = 0x00;
    }
    pw_prescan_result res;
    assert_int_equal(scan(buf, 2 * n, &res), PW_PRESCAN_TOO_MANY);
    assert_int_equal(res.readings, 1001);
    assert_int_equal(res.offset, 2000);
    free(buf);
}

static void test_field_occurrence_bounds(void **state)
{
    (void)state;
    /* one reading with k occurrences of zone = "" */
    uint8_t buf[256];
    pw_prescan_result res;
    for (int k = 32; k <= 33; k++) {
        buf[0] = 0x0a;
        buf[1] = (uint8_t)(2 * k);
        for (int i = 0; i < k; i++) {
            buf[2 + 2 * i] = 0x12;
            buf[3 + 2 * i] = 0x00;
        }
        pw_prescan_rc rc = scan(buf, (size_t)(2 + 2 * k), &res);
        assert_int_equal(rc, k == 32 ? PW_PRESCAN_OK : PW_PRESCAN_TOO_DENSE);
    }
    assert_string_equal(res.message, "readings[0]: more than 32 field occurrences");
    /* unknown top-level fields: 16 pass, 17 do not */
    for (int k = 16; k <= 17; k++) {
        for (int i = 0; i < k; i++) {
            buf[2 * i] = 0x78; /* field 15, varint */
            buf[2 * i + 1] = 0x01;
        }
        assert_int_equal(scan(buf, (size_t)(2 * k), &res),
                         k == 16 ? PW_PRESCAN_OK : PW_PRESCAN_TOO_DENSE);
    }
}

static void test_nul_in_strings(void **state)
{
    (void)state;
    pw_prescan_result res;
    /* readings[1].zone = "a\0b" */
    const uint8_t r[] = {0x0a, 0x00, 0x0a, 0x05, 0x12, 0x03, 'a', 0x00, 'b'};
    assert_int_equal(scan(r, sizeof(r), &res), PW_PRESCAN_NUL);
    assert_string_equal(res.message, "readings[1].zone: must not contain U+0000");
    /* alerts[0].message */
    const uint8_t a[] = {0x12, 0x03, 0x2a, 0x01, 0x00};
    assert_int_equal(scan(a, sizeof(a), &res), PW_PRESCAN_NUL);
    assert_string_equal(res.message, "alerts[0].message: must not contain U+0000");
    /* idempotency_key */
    const uint8_t k[] = {0x1a, 0x02, 'k', 0x00};
    assert_int_equal(scan(k, sizeof(k), &res), PW_PRESCAN_NUL);
    assert_string_equal(res.message, "idempotency_key: must not contain U+0000");
    /* a NUL in an unknown LEN field is not a string of ours: passes */
    const uint8_t u[] = {0x0a, 0x03, 0x42, 0x01, 0x00};
    assert_int_equal(scan(u, sizeof(u), &res), PW_PRESCAN_OK);
}

static void test_malformed_inputs(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        const char *bytes;
        size_t len;
        size_t offset;
    } cases[] = {
        {"tag varint too long", "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f", 10, 0},
        {"tag beyond 32 bits", "\xff\xff\xff\xff\x1f", 5, 0},
        {"field number 0", "\x02\x00", 2, 0},
        {"truncated varint", "\x08\x80", 2, 0},
        {"length past the end", "\x0a\x05\x01", 3, 0},
        {"length overflow", "\x0a\xff\xff\xff\xff\x0f", 6, 0},
        {"group start", "\x0b", 1, 0},
        {"wire type 7", "\x0f", 1, 0},
        {"readings as fixed32", "\x0d\x00\x00\x00\x00", 5, 0},
        {"key as varint", "\x18\x01", 2, 0},
        {"truncated fixed64", "\x09\x00\x00", 3, 0},
        {"reading value as varint", "\x0a\x02\x20\x01", 4, 2},
        {"reading zone as varint", "\x0a\x02\x10\x01", 4, 2},
        {"alert severity as LEN", "\x12\x02\x1a\x00", 4, 2},
        {"inner length past item", "\x0a\x02\x12\x05", 4, 2},
        {"second field bad", "\x0a\x00\x0a", 3, 2},
        {"10-byte varint > 64 bits", "\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02", 11, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        pw_prescan_result res;
        pw_prescan_rc rc = scan((const uint8_t *)cases[i].bytes, cases[i].len, &res);
        if (rc != PW_PRESCAN_MALFORMED || res.offset != cases[i].offset) {
            fail_msg("%s: rc %d offset %zu", cases[i].name, (int)rc, res.offset);
        }
        assert_non_null(strstr(res.message, "not a valid iot.v1.PublishRequest"));
    }
    /* the longest valid varint (10 bytes, 2^64-1) and fixed fields pass */
    const uint8_t ok[] = {0x78, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x7d, 0,
                          0,    0,    0,    0x79, 0,    0,    0,    0,    0,    0,    0,    0};
    pw_prescan_result res;
    assert_int_equal(scan(ok, sizeof(ok), &res), PW_PRESCAN_OK);
}

/* Whatever the pre-scan passes, protobuf-c decodes within the item bound. */
static void test_passed_requests_decode(void **state)
{
    (void)state;
    uint8_t *buf;
    size_t len = build(10, 5, &buf);
    pw_prescan_result res;
    assert_int_equal(scan(buf, len, &res), PW_PRESCAN_OK);
    Iot__V1__PublishRequest *req = iot__v1__publish_request__unpack(NULL, len, buf);
    assert_non_null(req);
    assert_int_equal(req->n_readings, res.readings);
    assert_int_equal(req->n_alerts, res.alerts);
    iot__v1__publish_request__free_unpacked(req, NULL);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_requests_are_counted),
        cmocka_unit_test(test_item_limit_boundary),
        cmocka_unit_test(test_empty_reading_bomb),
        cmocka_unit_test(test_field_occurrence_bounds),
        cmocka_unit_test(test_nul_in_strings),
        cmocka_unit_test(test_malformed_inputs),
        cmocka_unit_test(test_passed_requests_decode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
