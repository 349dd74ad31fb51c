/* Unit tests for the history queries' text forms and arithmetic: window
 * bounds, steps, automatic steps, cursors (mx_timeparse), argument
 * validation into a query (mx_hist_resolve, mx_history_arg, the REST route)
 * and the folding of minute cells into step buckets. Table-driven. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "mx_history.h"
#include "mx_history_api.h"
#include "mx_timeparse.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define T0 1764583200000LL /* 2025-12-01T10:00:00Z */
#define MIN 60000LL
#define HOUR 3600000LL
#define DAY 86400000LL

static void time_values(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int ok;
        int64_t ms;
    } cases[] = {
        {"2025-12-01T10:00:00Z", 1, T0},
        {"2025-12-01T11:00:00+01:00", 1, T0},
        {"2025-12-01T10:00:00.250Z", 1, T0 + 250},
        {"1764583200000", 1, T0},
        {"0", 1, 0},
        {"253402300799999", 1, 253402300799999LL},
        {"253402300800000", 0, 0},
        {"0123", 0, 0},
        {"-5", 0, 0},
        {"1e12", 0, 0},
        {"2025-12-01", 0, 0},
        {"2025-12-01T10:00:00", 0, 0},
        {"yesterday", 0, 0},
        {"", 0, 0},
        {"1234567890123456", 0, 0},
    };
    for (size_t i = 0; i < N(cases); i++) {
        int64_t ms = -1;
        int rc = mx_time_parse(cases[i].in, &ms);
        if (cases[i].ok) {
            assert_int_equal(rc, 0);
            assert_int_equal(ms, cases[i].ms);
        } else if (rc == 0) {
            fail_msg("accepted %s", cases[i].in);
        }
    }
}

static void step_values(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int ok;
        int64_t ms;
        const char *canonical;
    } cases[] = {
        {"", 1, MX_STEP_AUTO, NULL},
        {"auto", 1, MX_STEP_AUTO, NULL},
        {"raw", 1, MX_STEP_RAW, NULL},
        {"1m", 1, MIN, "1m"},
        {"5m", 1, 5 * MIN, "5m"},
        {"90m", 1, 90 * MIN, "90m"},
        {"60m", 1, HOUR, "1h"},
        {"3h", 1, 3 * HOUR, "3h"},
        {"24h", 1, DAY, "1d"},
        {"1440m", 1, DAY, "1d"},
        {"1d", 1, DAY, "1d"},
        {"2d", 0, 0, NULL},
        {"25h", 0, 0, NULL},
        {"1441m", 0, 0, NULL},
        {"0m", 0, 0, NULL},
        {"05m", 0, 0, NULL},
        {"30s", 0, 0, NULL},
        {"1.5h", 0, 0, NULL},
        {"m", 0, 0, NULL},
        {"-1m", 0, 0, NULL},
        {"1M", 0, 0, NULL},
        {"AUTO", 0, 0, NULL},
        {"99999999999m", 0, 0, NULL},
    };
    for (size_t i = 0; i < N(cases); i++) {
        int64_t ms = -7;
        int rc = mx_step_parse(cases[i].in, &ms);
        if (!cases[i].ok) {
            if (rc == 0) {
                fail_msg("accepted step %s", cases[i].in);
            }
            continue;
        }
        assert_int_equal(rc, 0);
        assert_int_equal(ms, cases[i].ms);
        if (cases[i].canonical != NULL) {
            char text[16];
            mx_step_format(ms, text, sizeof(text));
            assert_string_equal(text, cases[i].canonical);
        }
    }
}

static void step_arithmetic(void **state)
{
    (void)state;
    int64_t a, b;
    mx_step_align(T0 + 7 * MIN + 5, T0 + 23 * MIN, 5 * MIN, &a, &b);
    assert_int_equal(a, T0 + 5 * MIN);
    assert_int_equal(b, T0 + 25 * MIN);
    mx_step_align(T0, T0 + HOUR, HOUR, &a, &b);
    assert_int_equal(a, T0);
    assert_int_equal(b, T0 + HOUR);
    assert_int_equal(mx_step_buckets(T0, T0 + DAY, MIN), 1440);
    assert_int_equal(mx_step_buckets(T0 + 1, T0 + 2, MIN), 1);
    static const struct {
        int64_t span, step;
    } autos[] = {
        {HOUR, MIN},
        {DAY, MIN},
        {DAY + 60 * MIN, MIN}, /* 1500 buckets */
        {DAY + 61 * MIN, 5 * MIN},
        {7 * DAY, 10 * MIN},
        {10 * DAY, 10 * MIN},
        {14 * DAY, 15 * MIN},
        {31 * DAY, 30 * MIN},
    };
    for (size_t i = 0; i < N(autos); i++) {
        assert_int_equal(mx_step_auto(T0, T0 + autos[i].span), autos[i].step);
    }
    /* an unaligned to costs one more bucket */
    assert_int_equal(mx_step_auto(T0, T0 + DAY + 60 * MIN + 1), 5 * MIN);
}

static void cursors(void **state)
{
    (void)state;
    mx_cursor c = {T0 + 123, "0b6c2a64-9a3e-4d61-8f0e-2c7a0e5f9d11"};
    char text[MX_CURSOR_TEXT_MAX];
    assert_int_equal(mx_cursor_encode(&c, text, sizeof(text)), 0);
    assert_null(strpbrk(text, "+/="));
    mx_cursor d;
    assert_int_equal(mx_cursor_decode(text, &d), 0);
    assert_int_equal(d.ts_ms, c.ts_ms);
    assert_string_equal(d.token, c.token);
    /* a token with ':' and every length from 1 round-trips */
    for (size_t len = 1; len <= MX_TOKEN_MAX; len += 7) {
        mx_cursor e = {len, ""};
        memset(e.token, ':', len);
        e.token[len] = '\0';
        assert_int_equal(mx_cursor_encode(&e, text, sizeof(text)), 0);
        assert_int_equal(mx_cursor_decode(text, &d), 0);
        assert_string_equal(d.token, e.token);
        assert_int_equal(d.ts_ms, (int64_t)len);
    }
    static const char *const bad[] = {
        "",
        "garbage!",
        "MTo",            /* "1:" */
        "MToxMjM",        /* "1:123" (no token) */
        "MjoxMjM6YWJj",   /* "2:123:abc" (version) */
        "MTphYmM6ZGVm",   /* "1:abc:def" */
        "MTowMTIzOmFiYw", /* "1:0123:abc" (leading zero) */
        "MToxMjM6YSBi",   /* "1:123:a b" (space in token) */
        "MToxMjM6YWJj=",  /* padding */
        "MToxMjM6YWJ",    /* "1:123:ab" with non-zero trailing bits */
        "MToxMjM6YWJjZ",  /* a dangling sixth of a byte */
    };
    for (size_t i = 0; i < N(bad); i++) {
        if (mx_cursor_decode(bad[i], &d) == 0) {
            fail_msg("accepted cursor %s", bad[i]);
        }
    }
    assert_int_equal(mx_cursor_decode("MToxMjM6YWI", &d), 0);
    assert_string_equal(d.token, "ab");
    assert_int_equal(d.ts_ms, 123);
    char longer[400];
    memset(longer, 'A', sizeof(longer) - 1);
    longer[sizeof(longer) - 1] = '\0';
    assert_int_not_equal(mx_cursor_decode(longer, &d), 0);
    mx_cursor neg = {-1, "x"};
    assert_int_not_equal(mx_cursor_encode(&neg, text, sizeof(text)), 0);
}

static void routes(void **state)
{
    (void)state;
    static const struct {
        const char *url;
        int ok;
        mx_hist_kind kind;
        const char *key;
    } cases[] = {
        {"/v1/devices/press-7/readings", 1, MX_HIST_DEVICE_READINGS, "press-7"},
        {"/v1/devices/a/b/alerts", 1, MX_HIST_DEVICE_ALERTS, "a/b"},
        {"/v1/zones/Halle Süd/readings", 1, MX_HIST_ZONE_READINGS, "Halle Süd"},
        {"/v1/zones/x/alerts", 1, MX_HIST_ZONE_ALERTS, "x"},
        {"/v1/devices//readings", 0, 0, NULL},
        {"/v1/devices/x/readings/", 0, 0, NULL},
        {"/v1/devices/x", 0, 0, NULL},
        {"/v1/device/x/readings", 0, 0, NULL},
        {"/v1/metrics/devices/health", 0, 0, NULL},
    };
    for (size_t i = 0; i < N(cases); i++) {
        mx_hist_kind k;
        const char *key;
        size_t len;
        int ok = mx_history_route(cases[i].url, &k, &key, &len);
        assert_int_equal(ok, cases[i].ok);
        if (ok) {
            assert_int_equal(k, cases[i].kind);
            assert_int_equal(len, strlen(cases[i].key));
            assert_memory_equal(key, cases[i].key, len);
        }
    }
}

/* Resolves name=value pairs of a REST request of kind at now T0 + 30 min. */
static int resolve_text(mx_hist_kind kind, const char *key, const char *const *kv, size_t n,
                        mx_hist_query *q, mx_param_error *e)
{
    mx_hist_args a;
    memset(&a, 0, sizeof(a));
    a.key = key;
    unsigned seen = 0;
    for (size_t i = 0; i + 1 < n; i += 2) {
        mx_history_arg(kind, &a, &seen, kv[i], kv[i + 1], e);
    }
    if (e->count == 0) {
        mx_hist_resolve(kind, &a, T0 + 30 * MIN, q, e);
    }
    return e->count;
}

static void resolve_defaults(void **state)
{
    (void)state;
    mx_hist_query q;
    mx_param_error e;
    mx_param_error_init(&e);
    const char *kv[] = {"type", " Temperature "};
    assert_int_equal(resolve_text(MX_HIST_DEVICE_READINGS, "  Press-7 ", kv, 2, &q, &e), 0);
    assert_string_equal(q.key, "press-7");
    assert_string_equal(q.type, "temperature");
    assert_int_equal(q.step_ms, MIN); /* 24 h: 1440 one-minute buckets */
    assert_int_equal(q.to_ms, T0 + 30 * MIN);
    assert_int_equal(q.from_ms, T0 + 30 * MIN - DAY);
    mx_param_error_free(&e);

    mx_param_error_init(&e);
    assert_int_equal(resolve_text(MX_HIST_ZONE_ALERTS, "Halle Süd", NULL, 0, &q, &e), 0);
    assert_string_equal(q.key, "halle süd"); /* only ASCII is lower-cased */
    assert_int_equal(q.limit, MX_HIST_ALERT_LIMIT_DEF);
    assert_int_equal(q.from_ms, T0 + 30 * MIN - 7 * DAY);
    mx_param_error_free(&e);

    mx_param_error_init(&e);
    const char *raw[] = {"type", "power", "step", "raw", "from", "2025-12-01T09:00:00Z"};
    assert_int_equal(resolve_text(MX_HIST_ZONE_READINGS, "z", raw, 6, &q, &e), 0);
    assert_int_equal(q.step_ms, MX_STEP_RAW);
    assert_int_equal(q.limit, MX_HIST_RAW_LIMIT_DEF);
    assert_int_equal(q.from_ms, T0 - HOUR);
    mx_param_error_free(&e);

    mx_param_error_init(&e);
    const char *al[] = {
        "type", "t", "step", "15m", "from", "1764583210000", "to", "2025-12-01T10:31:00Z"};
    assert_int_equal(resolve_text(MX_HIST_DEVICE_READINGS, "d", al, 8, &q, &e), 0);
    assert_int_equal(q.from_ms, T0); /* rounded down to 15 min */
    assert_int_equal(q.to_ms, T0 + 45 * MIN);
    assert_int_equal(q.step_ms, 15 * MIN);
    mx_param_error_free(&e);
}

static void resolve_cursor(void **state)
{
    (void)state;
    mx_cursor c = {T0 + 5 * MIN, "tok-1"};
    char text[MX_CURSOR_TEXT_MAX];
    assert_int_equal(mx_cursor_encode(&c, text, sizeof(text)), 0);
    mx_hist_query q;
    mx_param_error e;
    mx_param_error_init(&e);
    const char *kv[] = {"type",          "t",     "step", "raw",    "from",
                        "1764583200000", "limit", "250",  "cursor", text};
    assert_int_equal(resolve_text(MX_HIST_DEVICE_READINGS, "d", kv, 10, &q, &e), 0);
    assert_int_equal(q.has_cursor, 1);
    assert_int_equal(q.cursor.ts_ms, T0 + 5 * MIN);
    assert_string_equal(q.cursor.token, "tok-1");
    assert_int_equal(q.limit, 250);
    mx_param_error_free(&e);
    /* the same cursor outside the window */
    mx_param_error_init(&e);
    const char *out[] = {"from", "1764583200000", "to", "1764583260000", "cursor", text};
    assert_int_equal(resolve_text(MX_HIST_DEVICE_ALERTS, "d", out, 6, &q, &e), 1);
    assert_non_null(strstr(e.message, "cursor: does not belong to this window"));
    mx_param_error_free(&e);
}

static void resolve_errors(void **state)
{
    (void)state;
    static const struct {
        mx_hist_kind kind;
        const char *key;
        const char *kv[8];
        const char *param, *reason;
    } cases[] = {
        {MX_HIST_DEVICE_READINGS, "d", {"from", "1"}, "type", "is required"},
        {MX_HIST_DEVICE_READINGS, "  ", {"type", "t"}, "device_id", "is required"},
        {MX_HIST_ZONE_READINGS, "z", {"type", "t", "step", "7s"}, "step", "must be auto, raw"},
        {MX_HIST_ZONE_READINGS, "z", {"type", "t", "step", "2d"}, "step", "must be auto, raw"},
        {MX_HIST_DEVICE_READINGS, "d", {"type", "t", "from", "soon"}, "from", "RFC 3339"},
        {MX_HIST_DEVICE_READINGS, "d", {"type", "t", "to", "12:00"}, "to", "RFC 3339"},
        {MX_HIST_DEVICE_READINGS,
         "d",
         {"type", "t", "from", "1764583200000", "to", "1764583200000"},
         "from",
         "must be before to"},
        {MX_HIST_DEVICE_READINGS,
         "d",
         {"type", "t", "from", "1764583300000", "to", "1764583200000"},
         "from",
         "must be before to"},
        {MX_HIST_DEVICE_READINGS,
         "d",
         {"type", "t", "from", "2025-10-01T00:00:00Z"},
         "from",
         "at most 31 days"},
        {MX_HIST_DEVICE_READINGS,
         "d",
         {"type", "t", "step", "raw", "from", "2025-12-01T04:00:00Z"},
         "from",
         "at most 6 hours"},
        {MX_HIST_DEVICE_READINGS,
         "d",
         {"type", "t", "step", "1m", "from", "2025-11-29T00:00:00Z"},
         "step",
         "more than 1500 buckets"},
        {MX_HIST_DEVICE_READINGS, "d", {"type", "t", "limit", "10"}, "limit", "only for step=raw"},
        {MX_HIST_DEVICE_READINGS,
         "d",
         {"type", "t", "cursor", "abc"},
         "cursor",
         "only for step=raw"},
        {MX_HIST_DEVICE_READINGS,
         "d",
         {"type", "t", "step", "raw", "from", "1764579600000", "limit", "5001"},
         "limit",
         "between 1 and 5000"},
        {MX_HIST_DEVICE_READINGS,
         "d",
         {"type", "t", "step", "raw", "from", "1764579600000", "limit", "0"},
         "limit",
         "between 1 and 5000"},
        {MX_HIST_DEVICE_READINGS,
         "d",
         {"type", "t", "step", "raw", "from", "1764579600000", "limit", "ten"},
         "limit",
         "between 1 and 5000"},
        {MX_HIST_DEVICE_READINGS,
         "d",
         {"type", "t", "step", "raw", "from", "1764579600000", "cursor", "!!"},
         "cursor",
         "is not a cursor"},
        {MX_HIST_DEVICE_ALERTS, "d", {"limit", "1001"}, "limit", "between 1 and 1000"},
        {MX_HIST_DEVICE_ALERTS, "d", {"type", "t"}, "type", "unknown parameter"},
        {MX_HIST_DEVICE_ALERTS, "d", {"from", "2025-10-01T00:00:00Z"}, "from", "at most 31 days"},
        {MX_HIST_ZONE_ALERTS, "z", {"step", "1m"}, "step", "unknown parameter"},
        {MX_HIST_ZONE_ALERTS, "z", {"from", "1", "from", "2"}, "from", "given more than once"},
        {MX_HIST_ZONE_ALERTS, "z", {"bogus", "1"}, "bogus", "unknown parameter (allowed: from"},
        {MX_HIST_ZONE_ALERTS,
         "a\x01"
         "b",
         {NULL},
         "zone",
         "control characters"},
        {MX_HIST_ZONE_ALERTS, "\xc3\x28", {NULL}, "zone", "valid UTF-8"},
    };
    for (size_t i = 0; i < N(cases); i++) {
        size_t n = 0;
        while (n < 8 && cases[i].kv[n] != NULL) {
            n += 2;
        }
        mx_hist_query q;
        mx_param_error e;
        mx_param_error_init(&e);
        int count = resolve_text(cases[i].kind, cases[i].key, cases[i].kv, n, &q, &e);
        if (count < 1) {
            fail_msg("case %zu accepted", i);
        }
        json_t *d = json_array_get(e.details, 0);
        const char *param = json_string_value(json_object_get(d, "param"));
        const char *reason = json_string_value(json_object_get(d, "reason"));
        if (param == NULL || strcmp(param, cases[i].param) != 0 || reason == NULL ||
            strstr(reason, cases[i].reason) == NULL) {
            fail_msg("case %zu: got %s: %s", i, param ? param : "-", reason ? reason : "-");
        }
        mx_param_error_free(&e);
    }
}

static void grpc_limit_zero_is_default(void **state)
{
    (void)state;
    mx_hist_args a = {"d", "t", "1764579600000", NULL, "raw", NULL, 0, 0};
    mx_hist_query q;
    mx_param_error e;
    mx_param_error_init(&e);
    assert_int_equal(mx_hist_resolve(MX_HIST_DEVICE_READINGS, &a, T0, &q, &e), 0);
    assert_int_equal(q.limit, MX_HIST_RAW_LIMIT_DEF);
    assert_int_equal(q.from_ms, T0 - HOUR);
    mx_param_error_free(&e);
    /* the default window (24 h) is too long for raw: from must be given */
    a.from = NULL;
    mx_param_error_init(&e);
    assert_int_equal(mx_hist_resolve(MX_HIST_DEVICE_READINGS, &a, T0, &q, &e), -1);
    assert_non_null(strstr(e.message, "at most 6 hours"));
    mx_param_error_free(&e);
    /* a bare name (no '=') */
    unsigned seen = 0;
    mx_param_error_init(&e);
    mx_history_arg(MX_HIST_ZONE_ALERTS, &a, &seen, "to", NULL, &e);
    assert_int_equal(e.count, 1);
    assert_non_null(strstr(e.message, "to: requires a value"));
    mx_param_error_free(&e);
}

/* A state of minutes m[0..n) each with count c, value v. */
static void fold_exact(void **state)
{
    (void)state;
    uint32_t minute[] = {0, 1, 2, 59};
    uint64_t count[] = {60, 60, 0, 10};
    double sum[] = {600, 1200, 0, 50}, min[] = {1, 2, 0, 5}, max[] = {19, 38, 0, 5};
    int64_t first[] = {T0, T0 + MIN, 0, T0 + 59 * MIN + 1};
    int64_t last[] = {T0 + 59000, T0 + MIN + 59000, 0, T0 + 59 * MIN + 50000};
    Iot__V1__SeriesState st = IOT__V1__SERIES_STATE__INIT;
    st.n_minute = st.n_count = st.n_sum = st.n_min = st.n_max = st.n_first_ms = st.n_last_ms = 4;
    st.minute = minute;
    st.count = count;
    st.sum = sum;
    st.min = min;
    st.max = max;
    st.first_ms = first;
    st.last_ms = last;
    st.unit = "C";

    mx_hist_fold f;
    assert_int_equal(mx_hist_fold_init(&f, T0, T0 + HOUR, 5 * MIN), 0);
    assert_int_equal(mx_hist_fold_state(&f, T0, &st), 0);
    assert_int_equal(mx_hist_fold_state(&f, T0, &st), 0); /* a second partition's hour */
    Iot__V1__ReadingHistory *h = mx_hist_fold_build(&f, "temperature", "");
    assert_non_null(h);
    assert_string_equal(h->unit, "C");
    assert_string_equal(h->step, "5m");
    assert_int_equal(h->step_ms, 5 * MIN);
    assert_int_equal(h->n_buckets, 2);
    assert_int_equal(h->count, 260);
    assert_int_equal(h->buckets[0]->start_ms, T0);
    assert_int_equal(h->buckets[0]->count, 240);
    assert_true(h->buckets[0]->avg == 1800.0 * 2 / 240);
    assert_true(h->buckets[0]->min == 1 && h->buckets[0]->max == 38);
    assert_int_equal(h->buckets[0]->first_ts_ms, T0);
    assert_int_equal(h->buckets[0]->last_ts_ms, T0 + MIN + 59000);
    assert_int_equal(h->buckets[1]->start_ms, T0 + 55 * MIN);
    assert_int_equal(h->buckets[1]->count, 20);
    protobuf_c_message_free_unpacked(&h->base, NULL);
    mx_hist_fold_free(&f);

    /* cells outside the window are dropped; an hour before it adds nothing */
    assert_int_equal(mx_hist_fold_init(&f, T0 + MIN, T0 + 59 * MIN, MIN), 0);
    assert_int_equal(mx_hist_fold_state(&f, T0, &st), 0);
    assert_int_equal(mx_hist_fold_state(&f, T0 - HOUR, &st), 0);
    h = mx_hist_fold_build(&f, "t", "x");
    assert_int_equal(h->n_buckets, 1);
    assert_int_equal(h->buckets[0]->start_ms, T0 + MIN);
    assert_int_equal(h->count, 60);
    protobuf_c_message_free_unpacked(&h->base, NULL);
    mx_hist_fold_free(&f);

    /* inconsistent states are refused */
    assert_int_equal(mx_hist_fold_init(&f, T0, T0 + HOUR, MIN), 0);
    st.n_max = 3;
    assert_int_equal(mx_hist_fold_state(&f, T0, &st), -1);
    st.n_max = 4;
    minute[0] = 60;
    assert_int_equal(mx_hist_fold_state(&f, T0, &st), -1);
    h = mx_hist_fold_build(&f, "pressure", mx_hist_type_unit("pressure"));
    assert_int_equal(h->n_buckets, 0);
    assert_string_equal(h->unit, "hPa");
    protobuf_c_message_free_unpacked(&h->base, NULL);
    mx_hist_fold_free(&f);
    assert_int_equal(mx_hist_fold_init(&f, T0, T0 + 1501 * MIN, MIN), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(time_values),
        cmocka_unit_test(step_values),
        cmocka_unit_test(step_arithmetic),
        cmocka_unit_test(cursors),
        cmocka_unit_test(routes),
        cmocka_unit_test(resolve_defaults),
        cmocka_unit_test(resolve_cursor),
        cmocka_unit_test(resolve_errors),
        cmocka_unit_test(grpc_limit_zero_is_default),
        cmocka_unit_test(fold_exact),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
