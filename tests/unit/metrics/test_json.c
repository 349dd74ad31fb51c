/* Unit tests for mx_json: the REST shim's field-for-field JSON mapping of the
 * protobuf responses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "iot/v1/metrics.pb-c.h"
#include "mx_json.h"

static void every_field_under_its_proto_name(void **state)
{
    (void)state;
    Iot__V1__FirmwareVersion v = IOT__V1__FIRMWARE_VERSION__INIT;
    Iot__V1__FirmwareVersion *vs[] = {&v};
    Iot__V1__FirmwareStatusResponse r = IOT__V1__FIRMWARE_STATUS_RESPONSE__INIT;
    v.firmware = "2.1.0";
    v.devices = 9007199254740993ULL; /* 2^53 + 1: must stay an exact integer */
    v.share = 0.1;
    v.last_seen_ms = 1795602030500LL;
    v.outdated = 1;
    r.versions = vs;
    r.n_versions = 1;
    r.newest = "3.0.0";
    r.total_devices = 12;

    json_t *j = mx_json_from_message(&r.base);
    assert_non_null(j);
    assert_int_equal(json_object_size(j),
                     4); /* versions, newest, total_devices, outdated_devices */
    assert_string_equal(json_string_value(json_object_get(j, "newest")), "3.0.0");
    assert_true(json_is_integer(json_object_get(j, "total_devices")));
    assert_int_equal(json_integer_value(json_object_get(j, "total_devices")), 12);
    assert_true(json_is_integer(json_object_get(j, "outdated_devices"))); /* default present */
    assert_int_equal(json_integer_value(json_object_get(j, "outdated_devices")), 0);

    json_t *arr = json_object_get(j, "versions");
    assert_true(json_is_array(arr));
    assert_int_equal(json_array_size(arr), 1);
    json_t *o = json_array_get(arr, 0);
    assert_string_equal(json_string_value(json_object_get(o, "firmware")), "2.1.0");
    assert_int_equal(json_integer_value(json_object_get(o, "devices")), 9007199254740993LL);
    assert_true(json_is_real(json_object_get(o, "share")));
    assert_true(json_real_value(json_object_get(o, "share")) == 0.1);
    assert_true(json_is_true(json_object_get(o, "outdated")));
    assert_int_equal(json_integer_value(json_object_get(o, "last_seen_ms")), 1795602030500LL);
    assert_string_equal(json_string_value(json_object_get(o, "last_seen")),
                        "2026-11-25T10:20:30.500Z");
    char *text = json_dumps(j, JSON_COMPACT);
    assert_non_null(strstr(text, "\"devices\":9007199254740993"));
    free(text);
    json_decref(j);
}

static void empty_response_has_empty_arrays_and_defaults(void **state)
{
    (void)state;
    Iot__V1__DeviceHealthResponse r = IOT__V1__DEVICE_HEALTH_RESPONSE__INIT;
    json_t *j = mx_json_from_message(&r.base);
    assert_true(json_is_array(json_object_get(j, "silent")));
    assert_int_equal(json_array_size(json_object_get(j, "silent")), 0);
    assert_int_equal(json_integer_value(json_object_get(j, "total_devices")), 0);
    assert_true(json_is_null(json_object_get(j, "as_of"))); /* time twin of 0 */
    assert_true(json_is_null(json_object_get(j, "threshold")));
    json_decref(j);
}

static void nested_messages_and_repeated_counts(void **state)
{
    (void)state;
    Iot__V1__SeverityCount s1 = IOT__V1__SEVERITY_COUNT__INIT, s2 = IOT__V1__SEVERITY_COUNT__INIT;
    Iot__V1__SeverityCount *ss[] = {&s1, &s2};
    Iot__V1__AlertBreakdownResponse r = IOT__V1__ALERT_BREAKDOWN_RESPONSE__INIT;
    s1.severity = "critical";
    s1.count = 3;
    s2.severity = "info";
    s2.count = 4;
    r.by_severity = ss;
    r.n_by_severity = 2;
    r.total = 7;
    r.window_hours = 168;
    r.from_ms = -1000; /* before the epoch still formats */
    json_t *j = mx_json_from_message(&r.base);
    json_t *bs = json_object_get(j, "by_severity");
    assert_int_equal(json_array_size(bs), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(bs, 1), "severity")),
                        "info");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(bs, 1), "count")), 4);
    assert_int_equal(json_array_size(json_object_get(j, "top_codes")), 0);
    assert_int_equal(json_integer_value(json_object_get(j, "window_hours")), 168);
    assert_int_equal(json_integer_value(json_object_get(j, "from_ms")), -1000);
    assert_string_equal(json_string_value(json_object_get(j, "from")), "1969-12-31T23:59:59.000Z");
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_field_under_its_proto_name),
        cmocka_unit_test(empty_response_has_empty_arrays_and_defaults),
        cmocka_unit_test(nested_messages_and_repeated_counts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
