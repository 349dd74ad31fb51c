/* Unit test for pw_prom: exact exposition text for labelled counters,
 * gauges, callback gauges and histograms (cumulative buckets, _sum, _count),
 * label and help escaping, and concurrent increments. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "pw_prom.h"

static void test_counter_with_labels(void **state)
{
    (void)state;
    pw_prom *p = pw_prom_new();
    pw_prom_family *c = pw_prom_counter(p, "pw_http_requests_total", "HTTP requests served.",
                                        "route,method,status");
    assert_non_null(c);
    const char *ok[] = {"/v1/telemetry", "POST", "202"};
    const char *bad[] = {"/v1/alerts", "POST", "400"};
    const char *odd[] = {"a\"b\\c\nd", "GET", "200"};
    pw_prom_add(c, ok, 1);
    pw_prom_add(c, bad, 1);
    pw_prom_add(c, ok, 1);
    pw_prom_add(c, odd, 0.5);
    pw_prom_add(c, ok, -5); /* counters never go down */
    assert_true(pw_prom_value(c, ok) == 2);
    assert_true(pw_prom_value(c, bad) == 1);
    const char *absent[] = {"/x", "GET", "200"};
    assert_true(pw_prom_value(c, absent) == 0);

    char *text = pw_prom_render(p);
    assert_string_equal(
        text, "# HELP pw_http_requests_total HTTP requests served.\n"
              "# TYPE pw_http_requests_total counter\n"
              "pw_http_requests_total{route=\"/v1/telemetry\",method=\"POST\",status=\"202\"} 2\n"
              "pw_http_requests_total{route=\"/v1/alerts\",method=\"POST\",status=\"400\"} 1\n"
              "pw_http_requests_total{route=\"a\\\"b\\\\c\\nd\",method=\"GET\",status=\"200\"} "
              "0.5\n");
    free(text);
    pw_prom_free(p);
}

static void test_histogram(void **state)
{
    (void)state;
    pw_prom *p = pw_prom_new();
    const double bounds[] = {0.1, 0.5, 1};
    pw_prom_family *h =
        pw_prom_histogram(p, "pw_request_seconds", "Request latency.", "route", bounds, 3);
    const char *route[] = {"/v1/telemetry"};
    pw_prom_observe(h, route, 0.5); /* on the bound: counts in le="0.5" */
    pw_prom_observe(h, route, 0.25);
    pw_prom_observe(h, route, 0.25);
    pw_prom_observe(h, route, 2);
    assert_true(pw_prom_value(h, route) == 4);
    char *text = pw_prom_render(p);
    assert_string_equal(text, "# HELP pw_request_seconds Request latency.\n"
                              "# TYPE pw_request_seconds histogram\n"
                              "pw_request_seconds_bucket{route=\"/v1/telemetry\",le=\"0.1\"} 0\n"
                              "pw_request_seconds_bucket{route=\"/v1/telemetry\",le=\"0.5\"} 3\n"
                              "pw_request_seconds_bucket{route=\"/v1/telemetry\",le=\"1\"} 3\n"
                              "pw_request_seconds_bucket{route=\"/v1/telemetry\",le=\"+Inf\"} 4\n"
                              "pw_request_seconds_sum{route=\"/v1/telemetry\"} 3\n"
                              "pw_request_seconds_count{route=\"/v1/telemetry\"} 4\n");
    free(text);
    pw_prom_free(p);
}

static double queue_depth(void *ctx)
{
    return *(const double *)ctx;
}

static void test_unlabelled_gauges_and_order(void **state)
{
    (void)state;
    pw_prom *p = pw_prom_new();
    pw_prom_family *g =
        pw_prom_gauge(p, "pw_inflight", "Requests in flight.\nSecond \\ line", NULL);
    const double bounds[] = {1};
    pw_prom_family *h = pw_prom_histogram(p, "pw_batch_size", "Batch sizes.", NULL, bounds, 1);
    double depth = 12.25;
    pw_prom_gauge_fn(p, "pw_queue_depth", "Queued messages.", queue_depth, &depth);
    char *text = pw_prom_render(p);
    assert_string_equal(text, "# HELP pw_inflight Requests in flight.\\nSecond \\\\ line\n"
                              "# TYPE pw_inflight gauge\n"
                              "pw_inflight 0\n"
                              "# HELP pw_batch_size Batch sizes.\n"
                              "# TYPE pw_batch_size histogram\n"
                              "pw_batch_size_bucket{le=\"1\"} 0\n"
                              "pw_batch_size_bucket{le=\"+Inf\"} 0\n"
                              "pw_batch_size_sum 0\n"
                              "pw_batch_size_count 0\n"
                              "# HELP pw_queue_depth Queued messages.\n"
                              "# TYPE pw_queue_depth gauge\n"
                              "pw_queue_depth 12.25\n");
    free(text);

    pw_prom_set(g, NULL, 3);
    pw_prom_add(g, NULL, -1.5);
    assert_true(pw_prom_value(g, NULL) == 1.5);
    pw_prom_observe(h, NULL, 0.1);
    depth = 1e21;
    text = pw_prom_render(p);
    assert_non_null(strstr(text, "\npw_inflight 1.5\n"));
    assert_non_null(strstr(text, "\npw_batch_size_bucket{le=\"1\"} 1\n"));
    assert_non_null(strstr(text, "\npw_batch_size_sum 0.1\n"));
    assert_non_null(strstr(text, "\npw_queue_depth 1e+21\n"));
    free(text);

    /* same name and type returns the same family; another type is refused */
    assert_ptr_equal(pw_prom_gauge(p, "pw_inflight", "again", NULL), g);
    assert_null(pw_prom_counter(p, "pw_inflight", "again", NULL));
    pw_prom_free(p);
}

typedef struct {
    pw_prom_family *c;
    pw_prom_family *h;
} worker_arg;

static void *adder(void *arg)
{
    worker_arg *w = arg;
    char label[8];
    for (int i = 0; i < 20000; i++) {
        label[0] = (char)('a' + i % 5);
        label[1] = '\0';
        const char *lv[] = {label};
        pw_prom_add(w->c, lv, 1);
        pw_prom_observe(w->h, lv, i % 3);
    }
    return NULL;
}

static void test_concurrent_updates(void **state)
{
    (void)state;
    pw_prom *p = pw_prom_new();
    const double bounds[] = {0.5, 1.5};
    worker_arg w = {pw_prom_counter(p, "pw_c_total", "c", "k"),
                    pw_prom_histogram(p, "pw_h", "h", "k", bounds, 2)};
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_create(&t[i], NULL, adder, &w), 0);
    }
    for (int i = 0; i < 4; i++) {
        char *text = pw_prom_render(p); /* render concurrently with updates */
        assert_non_null(text);
        free(text);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
    }
    double total = 0, hcount = 0;
    for (char k = 'a'; k <= 'e'; k++) {
        char label[2] = {k, '\0'};
        const char *lv[] = {label};
        assert_true(pw_prom_value(w.c, lv) == 16000);
        total += pw_prom_value(w.c, lv);
        hcount += pw_prom_value(w.h, lv);
    }
    assert_true(total == 80000);
    assert_true(hcount == 80000);
    pw_prom_free(p);
}

/* A removed series disappears from the text (first, middle and last of the
 * rendering order), a new series of the same labels starts from zero, and
 * removing an absent series changes nothing. */
static void test_remove_series(void **state)
{
    (void)state;
    pw_prom *p = pw_prom_new();
    pw_prom_family *g = pw_prom_gauge(p, "pw_lag", "Lag.", "topic,partition");
    const char *a[] = {"t", "0"}, *b[] = {"t", "1"}, *c[] = {"t", "2"}, *d[] = {"t", "3"};
    pw_prom_set(g, a, 1);
    pw_prom_set(g, b, 2);
    pw_prom_set(g, c, 3);
    pw_prom_set(g, d, 4);
    pw_prom_remove(g, b);
    pw_prom_remove(g, a);
    pw_prom_remove(g, d);
    pw_prom_remove(g, d);
    char *text = pw_prom_render(p);
    assert_string_equal(text, "# HELP pw_lag Lag.\n# TYPE pw_lag gauge\n"
                              "pw_lag{topic=\"t\",partition=\"2\"} 3\n");
    free(text);
    assert_true(pw_prom_value(g, b) == 0);
    pw_prom_set(g, a, 7);
    text = pw_prom_render(p);
    assert_string_equal(text, "# HELP pw_lag Lag.\n# TYPE pw_lag gauge\n"
                              "pw_lag{topic=\"t\",partition=\"2\"} 3\n"
                              "pw_lag{topic=\"t\",partition=\"0\"} 7\n");
    free(text);
    pw_prom_family *h = pw_prom_histogram(p, "pw_h", "H.", "partition", (double[]){1}, 1);
    const char *p0[] = {"0"};
    pw_prom_observe(h, p0, 0.5);
    pw_prom_remove(h, p0);
    assert_true(pw_prom_value(h, p0) == 0);
    pw_prom_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counter_with_labels),
        cmocka_unit_test(test_histogram),
        cmocka_unit_test(test_unlabelled_gauges_and_order),
        cmocka_unit_test(test_concurrent_updates),
        cmocka_unit_test(test_remove_series),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
