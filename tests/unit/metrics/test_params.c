/* Unit tests for mx_params: REST text and gRPC message validation of the
 * views' parameters (ranges, strict integers, unknown and repeated names). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "iot/v1/metrics.pb-c.h"
#include "mx_params.h"
#include "mx_views.h"

static const mx_view *view(const char *path)
{
    const mx_view *v = mx_view_by_path(path);
    assert_non_null(v);
    return v;
}

/* Applies "name=value" pairs (value NULL = bare name); returns error count. */
static int apply(const mx_view *v, mx_params *p, mx_param_error *e, const char *const *kv, size_t n)
{
    unsigned seen = 0;
    mx_params_defaults(v->params, v->nparams, p);
    for (size_t i = 0; i + 1 < n; i += 2) {
        mx_params_set_text(v->params, v->nparams, p, &seen, kv[i], kv[i + 1], e);
    }
    return e->count;
}

static void defaults_per_view(void **state)
{
    (void)state;
    mx_params p;
    const mx_view *t = view("/v1/metrics/temperature/zones");
    mx_params_defaults(t->params, t->nparams, &p);
    assert_int_equal(p.window_hours, 24);
    assert_string_equal(p.zone, "");
    const mx_view *a = view("/v1/metrics/alerts/breakdown");
    mx_params_defaults(a->params, a->nparams, &p);
    assert_int_equal(p.window_hours, 168);
    assert_int_equal(p.top, 10);
    const mx_view *h = view("/v1/metrics/devices/health");
    mx_params_defaults(h->params, h->nparams, &p);
    assert_int_equal(p.silent_minutes, 10);
    assert_int_equal(p.limit, 100);
}

static void valid_text_values_are_taken(void **state)
{
    (void)state;
    mx_params p;
    mx_param_error e;
    mx_param_error_init(&e);
    const char *kv[] = {"window_hours", "720", "top", "1", "zone", "hall a"};
    assert_int_equal(apply(view("/v1/metrics/alerts/breakdown"), &p, &e, kv, 6), 0);
    assert_int_equal(p.window_hours, 720);
    assert_int_equal(p.top, 1);
    assert_string_equal(p.zone, "hall a");
    assert_int_equal(json_array_size(e.details), 0);
    mx_param_error_free(&e);
}

static void rejects_non_integers_and_ranges(void **state)
{
    (void)state;
    const char *bad[] = {"0",  "721", "-1", "+5",  "1.5",  "1e2",
                         " 5", "5 ",  "",   "abc", "0x10", "99999999999"};
    const mx_view *t = view("/v1/metrics/temperature/zones");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        mx_params p;
        mx_param_error e;
        mx_param_error_init(&e);
        const char *kv[] = {"window_hours", bad[i]};
        assert_int_equal(apply(t, &p, &e, kv, 2), 1);
        assert_int_equal(p.window_hours, 24); /* untouched */
        assert_non_null(strstr(e.message, "window_hours: must be an integer between 1 and 720"));
        json_t *d = json_array_get(e.details, 0);
        assert_string_equal(json_string_value(json_object_get(d, "param")), "window_hours");
        assert_string_equal(json_string_value(json_object_get(d, "value")), bad[i]);
        mx_param_error_free(&e);
    }
}

static void rejects_unknown_repeated_and_bare(void **state)
{
    (void)state;
    mx_params p;
    mx_param_error e;
    mx_param_error_init(&e);
    const char *kv[] = {"limit", "5", "limit", "6", "silent_minutes", NULL, "color", "red"};
    assert_int_equal(apply(view("/v1/metrics/devices/health"), &p, &e, kv, 8), 3);
    assert_int_equal(p.limit, 5);
    assert_int_equal(json_array_size(e.details), 3);
    assert_non_null(strstr(e.message, "limit: given more than once"));
    assert_non_null(strstr(e.message, "silent_minutes: requires a value"));
    assert_non_null(
        strstr(e.message, "color: unknown parameter (allowed: silent_minutes, limit, zone)"));
    mx_param_error_free(&e);

    mx_param_error_init(&e);
    const char *kv2[] = {"window_hours", "24"};
    assert_int_equal(apply(view("/v1/metrics/activity/trend"), &p, &e, kv2, 2), 1);
    assert_non_null(strstr(e.message, "window_hours: unknown parameter (allowed: zone)"));
    mx_param_error_free(&e);
}

static void zone_must_be_short_printable_utf8(void **state)
{
    (void)state;
    const mx_view *f = view("/v1/metrics/firmware/status");
    char long_zone[MX_ZONE_MAX + 2];
    memset(long_zone, 'z', sizeof(long_zone) - 1);
    long_zone[sizeof(long_zone) - 1] = '\0';
    const char *bad[] = {long_zone, "a\nb", "\xff\xfe"};
    for (size_t i = 0; i < 3; i++) {
        mx_params p;
        mx_param_error e;
        mx_param_error_init(&e);
        const char *kv[] = {"zone", bad[i]};
        assert_int_equal(apply(f, &p, &e, kv, 2), 1);
        assert_string_equal(p.zone, "");
        mx_param_error_free(&e);
    }
    mx_params p;
    mx_param_error e;
    mx_param_error_init(&e);
    const char *ok[] = {"zone", "Halle Süd"};
    assert_int_equal(apply(f, &p, &e, ok, 2), 0);
    assert_string_equal(p.zone, "Halle Süd");
    mx_param_error_free(&e);
}

/* A zone filter takes every accepted zone: up to 64 characters of any
 * width (64 emoji are 256 bytes), kept whole; 65 characters are refused. */
static void zone_counts_characters(void **state)
{
    (void)state;
    const mx_view *f = view("/v1/metrics/firmware/status");
    static const char *const widths[] = {"z", "\xc3\xbc", "\xe7\x82\x89", "\xf0\x9f\x98\x80"};
    for (size_t w = 0; w < 4; w++) {
        for (size_t n = MX_ZONE_MAX; n <= MX_ZONE_MAX + 1; n++) {
            char zone[4 * (MX_ZONE_MAX + 1) + 1] = "";
            for (size_t i = 0; i < n; i++) {
                strcat(zone, widths[w]);
            }
            mx_params p;
            mx_param_error e;
            mx_param_error_init(&e);
            const char *kv[] = {"zone", zone};
            if (n == MX_ZONE_MAX) {
                assert_int_equal(apply(f, &p, &e, kv, 2), 0);
                assert_string_equal(p.zone, zone);
            } else {
                assert_int_equal(apply(f, &p, &e, kv, 2), 1);
                assert_string_equal(e.message, "zone: must be at most 64 characters");
            }
            mx_param_error_free(&e);
            /* the same through gRPC */
            Iot__V1__FirmwareStatusRequest req = IOT__V1__FIRMWARE_STATUS_REQUEST__INIT;
            req.zone = zone;
            mx_params_defaults(f->params, f->nparams, &p);
            mx_param_error_init(&e);
            int rc = mx_params_from_message(f->params, f->nparams, &req.base, &p, &e);
            if (n == MX_ZONE_MAX) {
                assert_int_equal(rc, 0);
                assert_string_equal(p.zone, zone);
            } else {
                assert_int_equal(rc, -1);
                assert_string_equal(e.message, "zone: must be at most 64 characters");
            }
            mx_param_error_free(&e);
        }
    }
}

static void grpc_zero_means_default_and_ranges_apply(void **state)
{
    (void)state;
    const mx_view *a = view("/v1/metrics/alerts/breakdown");
    Iot__V1__AlertBreakdownRequest req = IOT__V1__ALERT_BREAKDOWN_REQUEST__INIT;
    mx_params p;
    mx_param_error e;

    mx_param_error_init(&e);
    mx_params_defaults(a->params, a->nparams, &p);
    assert_int_equal(mx_params_from_message(a->params, a->nparams, &req.base, &p, &e), 0);
    assert_int_equal(p.window_hours, 168);
    assert_int_equal(p.top, 10);
    mx_param_error_free(&e);

    req.window_hours = 48;
    req.top = 3;
    req.zone = "press";
    mx_param_error_init(&e);
    mx_params_defaults(a->params, a->nparams, &p);
    assert_int_equal(mx_params_from_message(a->params, a->nparams, &req.base, &p, &e), 0);
    assert_int_equal(p.window_hours, 48);
    assert_int_equal(p.top, 3);
    assert_string_equal(p.zone, "press");
    mx_param_error_free(&e);

    req.top = 101;
    req.window_hours = 100000;
    mx_param_error_init(&e);
    mx_params_defaults(a->params, a->nparams, &p);
    assert_int_equal(mx_params_from_message(a->params, a->nparams, &req.base, &p, &e), -1);
    assert_int_equal(e.count, 2);
    assert_string_equal(e.message, "window_hours: must be an integer between 1 and 720, got "
                                   "100000; top: must be an integer between 1 and 100, got 101");
    mx_param_error_free(&e);
}

static void rest_and_grpc_agree(void **state)
{
    (void)state;
    const mx_view *h = view("/v1/metrics/devices/health");
    mx_params rest, grpc;
    mx_param_error e;
    mx_param_error_init(&e);
    const char *kv[] = {"silent_minutes", "30", "limit", "7", "zone", "z1"};
    assert_int_equal(apply(h, &rest, &e, kv, 6), 0);
    Iot__V1__DeviceHealthRequest req = IOT__V1__DEVICE_HEALTH_REQUEST__INIT;
    req.silent_minutes = 30;
    req.limit = 7;
    req.zone = "z1";
    mx_params_defaults(h->params, h->nparams, &grpc);
    assert_int_equal(mx_params_from_message(h->params, h->nparams, &req.base, &grpc, &e), 0);
    assert_memory_equal(&rest, &grpc, sizeof(rest));
    mx_param_error_free(&e);
}

/* Many problems: all counted, the first MX_PARAM_DETAILS_MAX detailed, the
 * message bounded. */
static void details_are_bounded(void **state)
{
    (void)state;
    mx_params p;
    mx_param_error e;
    mx_param_error_init(&e);
    const char *kv[40];
    char names[20][8];
    for (int i = 0; i < 20; i++) {
        snprintf(names[i], sizeof(names[i]), "x%d", i);
        kv[2 * i] = names[i];
        kv[2 * i + 1] = "1";
    }
    assert_int_equal(apply(view("/v1/metrics/activity/trend"), &p, &e, kv, 40), 20);
    assert_int_equal(json_array_size(e.details), MX_PARAM_DETAILS_MAX);
    assert_string_equal(json_string_value(json_object_get(json_array_get(e.details, 7), "param")),
                        "x7");
    assert_true(strlen(e.message) < sizeof(e.message));
    assert_true(strncmp(e.message, "x0: unknown parameter (allowed: zone); x1: ", 43) == 0);
    mx_param_error_free(&e);
}

/* An unknown name is quoted only when it is short printable ASCII. */
static void unprintable_unknown_name_is_not_echoed(void **state)
{
    (void)state;
    mx_params p;
    mx_param_error e;
    mx_param_error_init(&e);
    const char *kv[] = {"\xff\xfe", "1", "bad\nname", "2", "abcdefghijklmnopqrstuvwxyz0123456789",
                        "3"};
    assert_int_equal(apply(view("/v1/metrics/firmware/status"), &p, &e, kv, 6), 3);
    assert_string_equal(e.message, "(unprintable or long name): unknown parameter (allowed: zone); "
                                   "(unprintable or long name): unknown parameter (allowed: zone); "
                                   "(unprintable or long name): unknown parameter (allowed: zone)");
    assert_int_equal(json_array_size(e.details), 3);
    mx_param_error_free(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults_per_view),
        cmocka_unit_test(valid_text_values_are_taken),
        cmocka_unit_test(rejects_non_integers_and_ranges),
        cmocka_unit_test(rejects_unknown_repeated_and_bare),
        cmocka_unit_test(zone_must_be_short_printable_utf8),
        cmocka_unit_test(zone_counts_characters),
        cmocka_unit_test(grpc_zero_means_default_and_ranges_apply),
        cmocka_unit_test(rest_and_grpc_agree),
        cmocka_unit_test(details_are_bounded),
        cmocka_unit_test(unprintable_unknown_name_is_not_echoed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
