/* Unit tests of the report (sim_report, sim_table) from canned JSON, and of
 * the run's answer handling and summary (sim_send, sim_stats). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim_report.h"
#include "sim_send.h"
#include "sim_stats.h"
#include "sim_table.h"

#include "../capture.h"

/* Renders view i from (status, body) and returns the text; *rows gets the result. */
static char *render(int i, long status, const char *body, const char *fetch_err, int *rows)
{
    capture c;
    cap_open(&c);
    *rows = pw_sim_report_render(&pw_sim_views[i], status, body, fetch_err, c.f);
    return cap_close(&c);
}

static void test_table_alignment(void **state)
{
    (void)state;
    static const char *const heads[] = {"name", ">n", "note"};
    pw_sim_table t;
    pw_sim_table_init(&t, 3, heads);
    const char *r1[] = {"a", "1000", "x"};
    const char *r2[] = {"longer-name", "7", NULL};
    assert_int_equal(pw_sim_table_add(&t, r1), 0);
    assert_int_equal(pw_sim_table_add(&t, r2), 0);
    capture c;
    cap_open(&c);
    pw_sim_table_print(&t, c.f, "  ");
    char *out = cap_close(&c);
    assert_string_equal(out, "  name            n  note\n"
                             "  -----------  ----  ----\n"
                             "  a            1000  x\n"
                             "  longer-name     7\n");
    free(out);
    pw_sim_table_free(&t);
}

static void test_temperature_table(void **state)
{
    (void)state;
    /* 64-bit counts as strings and lowerCamelCase names, as protobuf's JSON mapping writes them */
    const char *body =
        "{\"zones\":[{\"zone\":\"zone-01\",\"avg_c\":22.44,\"min_c\":18.1,\"max_c\":27.9,"
        "\"count\":120},{\"zone\":\"zone-02\",\"avgC\":19,\"minC\":15,\"maxC\":23.3,"
        "\"count\":\"7\"}],\"from_ms\":\"1764000000000\",\"to_ms\":1764086400000}";
    int rows;
    char *out = render(PW_SIM_VIEW_TEMPERATURE, 200, body, NULL, &rows);
    assert_int_equal(rows, 2);
    assert_string_equal(out, "Temperature by zone\n"
                             "  window 2025-11-24T16:00:00Z .. 2025-11-25T16:00:00Z\n"
                             "  zone     avg C  min C  max C  readings\n"
                             "  -------  -----  -----  -----  --------\n"
                             "  zone-01   22.4   18.1   27.9       120\n"
                             "  zone-02   19.0   15.0   23.3         7\n"
                             "\n");
    free(out);
}

static void test_temperature_empty(void **state)
{
    (void)state;
    int rows;
    char *out = render(PW_SIM_VIEW_TEMPERATURE, 200, "{}", NULL, &rows);
    assert_int_equal(rows, 0);
    assert_string_equal(out, "Temperature by zone\n"
                             "  (no temperature readings in the window yet)\n"
                             "\n");
    free(out);
}

static void test_unavailable(void **state)
{
    (void)state;
    int rows;
    char *out = render(PW_SIM_VIEW_TEMPERATURE, 0, NULL, "Couldn't connect to server", &rows);
    assert_int_equal(rows, -1);
    assert_string_equal(out, "Temperature by zone\n"
                             "  unavailable: Couldn't connect to server "
                             "(GET /v1/metrics/temperature/zones)\n"
                             "\n");
    free(out);

    out = render(1, 503, "{\"error\":{\"code\":\"unavailable\",\"message\":\"store down\"}}", NULL,
                 &rows);
    assert_int_equal(rows, -1);
    assert_non_null(
        strstr(out, "  unavailable: HTTP 503: store down (GET /v1/metrics/alerts/breakdown)\n"));
    free(out);

    out = render(2, 404, "not here", NULL, &rows);
    assert_int_equal(rows, -1);
    assert_non_null(strstr(out, "unavailable: HTTP 404 (GET"));
    free(out);

    out = render(0, 200, "<html>", NULL, &rows);
    assert_int_equal(rows, -1);
    assert_non_null(strstr(out, "unavailable: response is not JSON"));
    free(out);

    out = render(0, 200, "[1,2]", NULL, &rows);
    assert_int_equal(rows, -1);
    assert_non_null(strstr(out, "unavailable: response is not a JSON object"));
    free(out);

    out = render(0, 200, "{\"zones\":{\"zone\":\"x\"}}", NULL, &rows);
    assert_int_equal(rows, -1);
    assert_non_null(strstr(out, "unavailable: field 'zones' is not a list"));
    free(out);

    out = render(0, 200, "{\"zones\":[{\"zone\":\"z\",\"avg_c\":\"warm\"}]}", NULL, &rows);
    assert_int_equal(rows, -1);
    assert_string_equal(out, "Temperature by zone\n"
                             "  unavailable: field 'avg_c' is not a number "
                             "(GET /v1/metrics/temperature/zones)\n"
                             "\n");
    free(out);
}

static void test_alerts_table(void **state)
{
    (void)state;
    const char *body = "{\"by_severity\":[{\"severity\":\"info\",\"count\":\"10\"},"
                       "{\"severity\":\"critical\",\"count\":2}],"
                       "\"top_codes\":[{\"code\":\"OVERHEAT\",\"count\":8},"
                       "{\"code\":\"SENSOR_FAULT\",\"count\":4}],\"total\":\"12\"}";
    int rows;
    char *out = render(1, 200, body, NULL, &rows);
    assert_int_equal(rows, 4);
    assert_string_equal(out, "Alert breakdown\n"
                             "  total 12 alerts\n"
                             "  severity  count\n"
                             "  --------  -----\n"
                             "  info         10\n"
                             "  critical      2\n"
                             "  top codes     count\n"
                             "  ------------  -----\n"
                             "  OVERHEAT          8\n"
                             "  SENSOR_FAULT      4\n"
                             "\n");
    free(out);
    /* a malformed second list: nothing half-printed */
    out = render(1, 200, "{\"by_severity\":[],\"top_codes\":7}", NULL, &rows);
    assert_int_equal(rows, -1);
    assert_string_equal(out, "Alert breakdown\n"
                             "  unavailable: field 'top_codes' is not a list "
                             "(GET /v1/metrics/alerts/breakdown)\n"
                             "\n");
    free(out);
}

static void test_activity_table(void **state)
{
    (void)state;
    const char *body = "{\"days\":[{\"day\":\"2025-11-24\"},{\"day\":\"2025-11-25\","
                       "\"readings\":\"1500\",\"alerts\":75,\"activeDevices\":50}]}";
    int rows;
    char *out = render(2, 200, body, NULL, &rows);
    assert_int_equal(rows, 2);
    assert_string_equal(out, "Activity, last 7 days\n"
                             "  day         readings  alerts  active devices\n"
                             "  ----------  --------  ------  --------------\n"
                             "  2025-11-24         0       0               0\n"
                             "  2025-11-25      1500      75              50\n"
                             "\n");
    free(out);
}

static void test_firmware_table(void **state)
{
    (void)state;
    const char *body = "{\"versions\":[{\"firmware\":\"2.4.1\",\"devices\":35,\"share\":0.7,"
                       "\"last_seen_ms\":\"1764064800000\"},{\"firmware\":\"2.1.5\",\"devices\":"
                       "15,\"share\":0.3,\"last_seen_ms\":1764064801999,\"outdated\":true}],"
                       "\"newest\":\"2.4.1\",\"total_devices\":50,\"outdated_devices\":15}";
    int rows;
    char *out = render(3, 200, body, NULL, &rows);
    assert_int_equal(rows, 2);
    assert_string_equal(out, "Firmware status\n"
                             "  newest 2.4.1; 50 devices, 15 outdated\n"
                             "  firmware  devices  share  last seen             status\n"
                             "  --------  -------  -----  --------------------  --------\n"
                             "  2.4.1          35  70.0%  2025-11-25T10:00:00Z  current\n"
                             "  2.1.5          15  30.0%  2025-11-25T10:00:01Z  outdated\n"
                             "\n");
    free(out);
}

static void test_health_table(void **state)
{
    (void)state;
    int rows;
    char *out = render(4, 200, "{}", NULL, &rows);
    assert_int_equal(rows, 0);
    assert_string_equal(out, "Device health\n"
                             "  0 of 0 devices silent\n"
                             "  (no devices seen yet)\n"
                             "\n");
    free(out);
    out = render(4, 200, "{\"total_devices\":\"50\"}", NULL, &rows);
    assert_int_equal(rows, 0);
    assert_string_equal(out, "Device health\n"
                             "  0 of 50 devices silent\n"
                             "  (every device reported recently)\n"
                             "\n");
    free(out);
    const char *body = "{\"silent\":[{\"device_id\":\"dev-0007\",\"zone\":\"zone-02\","
                       "\"last_seen_ms\":1764064800000,\"silent_seconds\":\"725\"}],"
                       "\"total_devices\":50,\"silent_devices\":1}";
    out = render(4, 200, body, NULL, &rows);
    assert_int_equal(rows, 1);
    assert_string_equal(out, "Device health\n"
                             "  1 of 50 devices silent\n"
                             "  device    zone     last seen             silent for\n"
                             "  --------  -------  --------------------  ----------\n"
                             "  dev-0007  zone-02  2025-11-25T10:00:00Z      12m 5s\n"
                             "\n");
    free(out);
}

static void test_answers(void **state)
{
    (void)state;
    assert_int_equal(pw_sim_accepted_count("{\"accepted\":5,\"ids\":[]}", 9), 5);
    assert_int_equal(pw_sim_accepted_count("{\"ids\":[]}", 9), 9);
    assert_int_equal(pw_sim_accepted_count("garbage", 3), 3);
    assert_int_equal(pw_sim_accepted_count(NULL, 1), 1);
    char out[256];
    pw_sim_describe_error(
        400, "/v1/telemetry",
        "{\"error\":{\"code\":\"invalid\",\"message\":\"invalid reading\","
        "\"details\":[{\"index\":0,\"field\":\"unit\",\"message\":\"unknown\"}]}}",
        out, sizeof out);
    assert_string_equal(out, "HTTP 400 /v1/telemetry: invalid reading (unit: unknown)");
    pw_sim_describe_error(401, "/v1/alerts", "{\"message\":\"No API key found in request\"}", out,
                          sizeof out);
    assert_string_equal(out, "HTTP 401 /v1/alerts: No API key found in request");
    pw_sim_describe_error(502, "/v1/alerts", "<html>\nBad Gateway</html>", out, sizeof out);
    assert_string_equal(out, "HTTP 502 /v1/alerts: <html> Bad Gateway</html>");
    pw_sim_describe_error(500, "/v1/alerts", NULL, out, sizeof out);
    assert_string_equal(out, "HTTP 500 /v1/alerts");
}

static void test_summary(void **state)
{
    (void)state;
    pw_sim_stats s;
    memset(&s, 0, sizeof s);
    s.sent = 160;
    s.accepted = 160;
    s.readings = 150;
    s.alerts = 10;
    s.requests = 33;
    s.retries = 1;
    s.throttled = 1;
    s.elapsed_s = 8.0;
    s.seed = 18446744073709551615ULL;
    assert_int_equal(pw_sim_stats_exit_code(&s), 0);
    assert_float_equal(pw_sim_stats_rate(&s), 20.0, 1e-9);
    capture c;
    cap_open(&c);
    pw_sim_stats_summary_json(&s, c.f);
    char *out = cap_close(&c);
    json_t *doc = json_loads(out, 0, NULL);
    assert_non_null(doc);
    assert_int_equal(json_integer_value(json_object_get(doc, "sent")), 160);
    assert_int_equal(json_integer_value(json_object_get(doc, "accepted")), 160);
    assert_int_equal(json_integer_value(json_object_get(doc, "rejected")), 0);
    assert_int_equal(json_integer_value(json_object_get(doc, "failed")), 0);
    assert_int_equal(json_integer_value(json_object_get(doc, "alerts")), 10);
    assert_string_equal(json_string_value(json_object_get(doc, "seed")), "18446744073709551615");
    json_decref(doc);
    free(out);

    cap_open(&c);
    pw_sim_stats_summary(&s, c.f);
    out = cap_close(&c);
    assert_non_null(strstr(out, "  sent       160 (150 readings, 10 alerts)\n"));
    assert_non_null(strstr(out, "  accepted   160\n"));
    assert_non_null(strstr(out, "  rate       20.0 msg/s\n"));
    assert_null(strstr(out, "last error"));
    free(out);

    s.failed = 1;
    assert_int_equal(pw_sim_stats_exit_code(&s), 1);
    s.failed = 0;
    s.rejected = 2;
    assert_int_equal(pw_sim_stats_exit_code(&s), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_alignment),   cmocka_unit_test(test_temperature_table),
        cmocka_unit_test(test_temperature_empty), cmocka_unit_test(test_unavailable),
        cmocka_unit_test(test_alerts_table),      cmocka_unit_test(test_activity_table),
        cmocka_unit_test(test_firmware_table),    cmocka_unit_test(test_health_table),
        cmocka_unit_test(test_answers),           cmocka_unit_test(test_summary),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
