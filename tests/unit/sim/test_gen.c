/* Unit tests of sim_gen: seeded determinism, the device table, value ranges
 * and units, alert fields, the alert share and request bodies. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sim_gen.h"

#define NOW_MS 1764064800000LL /* 2025-11-25T10:00:00Z */

/* The first n request bodies of a fleet, concatenated. */
static char *bodies(uint64_t seed, int n, unsigned batch)
{
    pw_sim_fleet f;
    assert_int_equal(pw_sim_fleet_init(&f, 50, 5, seed), 0);
    size_t cap = 1 << 20, len = 0;
    char *all = calloc(1, cap);
    for (int i = 0; i < n; i++) {
        pw_sim_kind kind = pw_sim_next_kind(&f, 0.2);
        json_t *b = pw_sim_next_body(&f, kind, batch, NOW_MS + i);
        char *s = json_dumps(b, PW_SIM_JSON_FLAGS);
        size_t sl = strlen(s);
        assert_true(len + sl + 2 < cap);
        memcpy(all + len, s, sl);
        len += sl;
        all[len++] = '\n';
        free(s);
        json_decref(b);
    }
    pw_sim_fleet_free(&f);
    return all;
}

static void test_same_seed_same_messages(void **state)
{
    (void)state;
    char *a = bodies(42, 300, 3);
    char *b = bodies(42, 300, 3);
    char *c = bodies(43, 300, 3);
    assert_true(strlen(a) > 1000);
    assert_string_equal(a, b);
    assert_string_not_equal(a, c);
    free(a);
    free(b);
    free(c);
}

static void test_device_table(void **state)
{
    (void)state;
    pw_sim_fleet f, g;
    assert_int_equal(pw_sim_fleet_init(&f, 50, 5, 9), 0);
    assert_int_equal(pw_sim_fleet_init(&g, 50, 5, 9), 0);
    assert_string_equal(f.devices[0].id, "dev-0001");
    assert_string_equal(f.devices[49].id, "dev-0050");
    assert_string_equal(f.devices[0].zone, "zone-01");
    assert_string_equal(f.devices[4].zone, "zone-05");
    assert_string_equal(f.devices[5].zone, "zone-01");
    size_t newest = 0;
    for (size_t i = 0; i < f.ndevices; i++) {
        const pw_sim_device *d = &f.devices[i];
        assert_string_equal(d->id, g.devices[i].id);
        assert_string_equal(d->unit, g.devices[i].unit);
        assert_ptr_equal(d->firmware, g.devices[i].firmware);
        if (i < 5) { /* the first device of every zone measures temperature */
            assert_int_equal(d->sensor, PW_SIM_TEMPERATURE);
        }
        if (strcmp(d->firmware, pw_sim_firmware_versions[0]) == 0) {
            newest++;
        }
    }
    assert_true(newest * 2 > f.ndevices); /* most devices run the newest firmware */
    pw_sim_fleet_free(&f);
    pw_sim_fleet_free(&g);
}

static void test_fleet_init_rejects_bad_sizes(void **state)
{
    (void)state;
    pw_sim_fleet f;
    assert_int_equal(pw_sim_fleet_init(&f, 3, 5, 1), -1);
    assert_int_equal(pw_sim_fleet_init(&f, 0, 0, 1), -1);
    assert_int_equal(pw_sim_fleet_init(&f, 1, 1, 1), 0);
    pw_sim_fleet_free(&f);
}

static void test_device_prefix(void **state)
{
    (void)state;
    pw_sim_fleet f;
    assert_int_equal(pw_sim_fleet_init_prefix(&f, "line7", 3, 1, 1), 0);
    assert_string_equal(f.devices[0].id, "line7-0001");
    assert_string_equal(f.devices[2].id, "line7-0003");
    json_t *r = pw_sim_next_reading(&f, NOW_MS);
    assert_string_equal(json_string_value(json_object_get(r, "device_id")), "line7-0001");
    json_decref(r);
    pw_sim_fleet_free(&f);
    assert_int_equal(pw_sim_fleet_init_prefix(&f, "a-prefix-longer-than-thirty-two-chars", 3, 1, 1),
                     -1);
}

static void test_unit_conversion(void **state)
{
    (void)state;
    assert_float_equal(pw_sim_to_unit(PW_SIM_TEMPERATURE, "F", 100.0), 212.0, 1e-9);
    assert_float_equal(pw_sim_to_unit(PW_SIM_TEMPERATURE, "K", 0.0), 273.15, 1e-9);
    assert_float_equal(pw_sim_to_unit(PW_SIM_TEMPERATURE, "C", 21.5), 21.5, 1e-9);
    assert_float_equal(pw_sim_to_unit(PW_SIM_PRESSURE, "kPa", 1013.25), 101.325, 1e-9);
    assert_float_equal(pw_sim_to_unit(PW_SIM_PRESSURE, "bar", 1013.25), 1.01325, 1e-9);
    assert_float_equal(pw_sim_to_unit(PW_SIM_HUMIDITY, "%", 45.0), 45.0, 1e-9);
}

/* Canonical value (°C, hPa, %) of a reading. */
static double canonical(const char *unit, double v)
{
    if (strcmp(unit, "F") == 0) {
        return (v - 32.0) * 5.0 / 9.0;
    }
    if (strcmp(unit, "K") == 0) {
        return v - 273.15;
    }
    if (strcmp(unit, "kPa") == 0) {
        return v * 10.0;
    }
    if (strcmp(unit, "bar") == 0) {
        return v * 1000.0;
    }
    return v;
}

static void test_reading_values_and_units(void **state)
{
    (void)state;
    pw_sim_fleet f;
    assert_int_equal(pw_sim_fleet_init(&f, 200, 7, 1234), 0);
    int seen_unit[7] = {0};
    static const char *const units[] = {"C", "F", "K", "hPa", "kPa", "bar", "%"};
    for (int i = 0; i < 20000; i++) {
        json_t *r = pw_sim_next_reading(&f, NOW_MS);
        const char *type = json_string_value(json_object_get(r, "type"));
        const char *unit = json_string_value(json_object_get(r, "unit"));
        json_t *value = json_object_get(r, "value");
        assert_true(json_is_real(value));
        double v = canonical(unit, json_real_value(value));
        assert_true(isfinite(v));
        int u = -1;
        for (int k = 0; k < 7; k++) {
            if (strcmp(unit, units[k]) == 0) {
                u = k;
            }
        }
        assert_true(u >= 0);
        seen_unit[u]++;
        if (strcmp(type, "temperature") == 0) {
            assert_true(u <= 2);
            assert_true(v >= -10.0 && v <= 60.0);
        } else if (strcmp(type, "pressure") == 0) {
            assert_true(u >= 3 && u <= 5);
            assert_true(v >= 950.0 && v <= 1080.0);
        } else {
            assert_string_equal(type, "humidity");
            assert_int_equal(u, 6);
            assert_true(v >= 0.0 && v <= 100.0);
        }
        assert_string_equal(json_string_value(json_object_get(r, "ts")),
                            "2025-11-25T10:00:00.000Z");
        assert_non_null(json_string_value(json_object_get(r, "firmware")));
        assert_non_null(strstr(json_string_value(json_object_get(r, "device_id")), "dev-"));
        json_decref(r);
    }
    /* mostly Celsius, and every unit occurs in a fleet of 200 */
    for (int k = 0; k < 7; k++) {
        assert_true(seen_unit[k] > 0);
    }
    assert_true(seen_unit[0] > seen_unit[1] + seen_unit[2]);
    pw_sim_fleet_free(&f);
}

static void test_readings_visit_every_device(void **state)
{
    (void)state;
    pw_sim_fleet f;
    assert_int_equal(pw_sim_fleet_init(&f, 12, 3, 5), 0);
    for (int i = 0; i < 24; i++) {
        json_t *r = pw_sim_next_reading(&f, NOW_MS);
        char want[16];
        snprintf(want, sizeof want, "dev-%04d", i % 12 + 1);
        assert_string_equal(json_string_value(json_object_get(r, "device_id")), want);
        json_decref(r);
    }
    pw_sim_fleet_free(&f);
}

static void test_alert_fields(void **state)
{
    (void)state;
    static const char *const codes[] = {"OVERHEAT", "PRESSURE_DROP", "VIBRATION_HIGH",
                                        "SENSOR_FAULT"};
    static const char *const sevs[] = {"info", "warning", "critical"};
    int seen_code[4] = {0}, seen_sev[3] = {0};
    pw_sim_fleet f;
    assert_int_equal(pw_sim_fleet_init(&f, 50, 5, 77), 0);
    for (int i = 0; i < 2000; i++) {
        json_t *a = pw_sim_next_alert(&f, NOW_MS);
        const char *code = json_string_value(json_object_get(a, "code"));
        const char *sev = json_string_value(json_object_get(a, "severity"));
        int c = -1, s = -1;
        for (int k = 0; k < 4; k++) {
            if (strcmp(code, codes[k]) == 0) {
                c = k;
            }
        }
        for (int k = 0; k < 3; k++) {
            if (strcmp(sev, sevs[k]) == 0) {
                s = k;
            }
        }
        assert_true(c >= 0 && s >= 0);
        seen_code[c]++;
        seen_sev[s]++;
        assert_true(strlen(json_string_value(json_object_get(a, "message"))) > 5);
        assert_non_null(json_string_value(json_object_get(a, "zone")));
        assert_non_null(json_string_value(json_object_get(a, "device_id")));
        assert_non_null(json_string_value(json_object_get(a, "ts")));
        json_decref(a);
    }
    for (int k = 0; k < 4; k++) {
        assert_true(seen_code[k] > 0);
    }
    assert_true(seen_sev[0] > seen_sev[1] && seen_sev[1] > seen_sev[2] && seen_sev[2] > 0);
    pw_sim_fleet_free(&f);
}

static unsigned count_alert_requests(double share, int n)
{
    pw_sim_fleet f;
    assert_int_equal(pw_sim_fleet_init(&f, 5, 1, 3), 0);
    unsigned alerts = 0;
    for (int i = 0; i < n; i++) {
        alerts += pw_sim_next_kind(&f, share) == PW_SIM_KIND_ALERTS;
    }
    pw_sim_fleet_free(&f);
    return alerts;
}

static void test_alert_share_is_exact(void **state)
{
    (void)state;
    assert_int_equal(count_alert_requests(0.0, 1000), 0);
    assert_int_equal(count_alert_requests(1.0, 1000), 1000);
    assert_in_range(count_alert_requests(0.05, 10000), 499, 501);
    assert_in_range(count_alert_requests(0.25, 400), 99, 101);
    /* evenly spread: a share of 0.05 gives one alert request in every 20 */
    for (int n = 20; n <= 200; n += 20) {
        assert_in_range(count_alert_requests(0.05, n), (unsigned)n / 20 - 1, (unsigned)n / 20 + 1);
    }
}

static void test_body_shape(void **state)
{
    (void)state;
    pw_sim_fleet f;
    assert_int_equal(pw_sim_fleet_init(&f, 10, 2, 3), 0);
    json_t *one = pw_sim_next_body(&f, PW_SIM_KIND_READINGS, 1, NOW_MS);
    assert_true(json_is_object(one));
    assert_non_null(json_object_get(one, "value"));
    json_t *many = pw_sim_next_body(&f, PW_SIM_KIND_ALERTS, 7, NOW_MS);
    assert_true(json_is_array(many));
    assert_int_equal(json_array_size(many), 7);
    assert_non_null(json_object_get(json_array_get(many, 6), "severity"));
    json_decref(one);
    json_decref(many);
    pw_sim_fleet_free(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_seed_same_messages),
        cmocka_unit_test(test_device_table),
        cmocka_unit_test(test_fleet_init_rejects_bad_sizes),
        cmocka_unit_test(test_device_prefix),
        cmocka_unit_test(test_unit_conversion),
        cmocka_unit_test(test_reading_values_and_units),
        cmocka_unit_test(test_readings_visit_every_device),
        cmocka_unit_test(test_alert_fields),
        cmocka_unit_test(test_alert_share_is_exact),
        cmocka_unit_test(test_body_shape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
