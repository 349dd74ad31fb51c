/* Unit test: every reading and alert the simulator generates passes the
 * platform's own input validation (pw_validate), single and batched. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "pw_time.h"
#include "pw_validate.h"
#include "sim_gen.h"

static void test_generated_messages_are_valid(void **state)
{
    (void)state;
    pw_sim_fleet f;
    int64_t now = pw_now_ms();
    assert_int_equal(pw_sim_fleet_init(&f, 60, 6, 2024), 0);
    for (int i = 0; i < 3000; i++) {
        pw_sim_kind kind = i % 10 == 0 ? PW_SIM_KIND_ALERTS : PW_SIM_KIND_READINGS;
        json_t *m = pw_sim_next_body(&f, kind, 1, now);
        pw_errors errs;
        pw_errors_init(&errs);
        int rc;
        if (kind == PW_SIM_KIND_ALERTS) {
            Iot__V1__Alert a = IOT__V1__ALERT__INIT;
            rc = pw_alert_from_json(m, -1, now, &a, &errs);
            if (rc == 0) {
                pw_alert_clear(&a);
            }
        } else {
            Iot__V1__Reading r = IOT__V1__READING__INIT;
            rc = pw_reading_from_json(m, -1, now, &r, &errs);
            if (rc == 0) {
                assert_int_equal(r.ts_ms, now);
                pw_reading_clear(&r);
            }
        }
        if (rc != 0) {
            char why[512];
            char *s = json_dumps(m, PW_SIM_JSON_FLAGS);
            pw_errors_summary(&errs, why, sizeof why);
            fail_msg("generated message rejected: %s: %s", s, why);
        }
        assert_int_equal(errs.len, 0);
        pw_errors_free(&errs);
        json_decref(m);
    }
    pw_sim_fleet_free(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generated_messages_are_valid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
