/* Unit test for the limits of pw_grpc: a real server on a loopback port with
 * small limits, called with the gRPC C core client — idle streams time out
 * with DEADLINE_EXCEEDED and never starve a unary call, PW_GRPC_MAX_CALLS
 * refuses the next call with RESOURCE_EXHAUSTED, a call that finds no free
 * worker ends with UNAVAILABLE, the server-side call lifetime, and the
 * PW_GRPC_* environment. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>

#include "grpc_client.h"
#include "pw_grpc.h"

#define HOLDERS 4

typedef struct {
    atomic_int release_busy; /* lets the "Busy" handler finish */
    atomic_int busy_in;      /* "Busy" handlers holding their worker */
    atomic_int hold_rc;      /* last value pw_grpc_call_recv gave "Hold" */
    atomic_llong deadline_ms;
} limits_state;

/* Waits for messages until the stream ends or fails. */
static void hold_handler(pw_grpc_call *call, void *ctx)
{
    limits_state *st = ctx;
    atomic_store(&st->deadline_ms, (long long)pw_grpc_call_deadline_ms(call));
    uint8_t *buf;
    size_t len;
    int rc;
    while ((rc = pw_grpc_call_recv(call, &buf, &len)) == 1) {
        free(buf);
    }
    atomic_store(&st->hold_rc, rc);
    pw_grpc_call_finish(call, NULL, 0, GRPC_STATUS_OK, NULL);
}

/* Holds its worker (handler code between recv and finish) until released. */
static void busy_handler(pw_grpc_call *call, void *ctx)
{
    limits_state *st = ctx;
    uint8_t *buf;
    size_t len;
    if (pw_grpc_call_recv(call, &buf, &len) != 1) {
        pw_grpc_call_finish(call, NULL, 0, GRPC_STATUS_INVALID_ARGUMENT, "no request");
        return;
    }
    free(buf);
    atomic_fetch_add(&st->busy_in, 1);
    while (!atomic_load(&st->release_busy)) {
        usleep(1000);
    }
    pw_grpc_call_finish(call, (const uint8_t *)"done", 4, GRPC_STATUS_OK, NULL);
}

typedef struct {
    pw_grpc_server *srv;
    grpc_channel *ch;
    limits_state st;
    char target[64];
} fixture;

static fixture *start(const pw_grpc_limits *l, unsigned workers)
{
    fixture *f = calloc(1, sizeof *f);
    char err[256] = "";
    snprintf(f->target, sizeof f->target, "127.0.0.1:%d", free_port());
    f->srv = pw_grpc_server_new_limits(f->target, 1024, l, err, sizeof err);
    assert_non_null(f->srv);
    assert_int_equal(
        pw_grpc_server_add_method(f->srv, "/test.v1.Echo/Unary", grpc_test_echo_handler, NULL), 0);
    assert_int_equal(pw_grpc_server_add_method(f->srv, "/test.v1.Echo/Hold", hold_handler, &f->st),
                     0);
    assert_int_equal(pw_grpc_server_add_method(f->srv, "/test.v1.Echo/Busy", busy_handler, &f->st),
                     0);
    assert_int_equal(pw_grpc_server_start(f->srv, workers, err, sizeof err), 0);
    grpc_init();
    grpc_channel_credentials *creds = grpc_insecure_credentials_create();
    f->ch = grpc_channel_create(f->target, creds, NULL);
    grpc_channel_credentials_release(creds);
    return f;
}

static int setup_long_idle(void **state)
{
    pw_grpc_limits l;
    pw_grpc_limits_default(&l);
    l.max_calls = HOLDERS + 2;
    l.worker_wait_ms = 200;
    *state = start(&l, 2);
    return 0;
}

static int setup_short_idle(void **state)
{
    pw_grpc_limits l;
    pw_grpc_limits_default(&l);
    l.idle_timeout_ms = 300;
    *state = start(&l, 2);
    return 0;
}

static int setup_short_life(void **state)
{
    pw_grpc_limits l;
    pw_grpc_limits_default(&l);
    l.max_call_ms = 500;
    *state = start(&l, 2);
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    atomic_store(&f->st.release_busy, 1);
    grpc_channel_destroy(f->ch);
    pw_grpc_server_stop(f->srv, 2000);
    pw_grpc_server_free(f->srv);
    grpc_shutdown();
    free(f);
    return 0;
}

typedef struct {
    grpc_channel *ch;
    client_req req;
    client_result res;
    atomic_int release;
    atomic_int done; /* the client has the call's status */
    pthread_t t;
} bg_call;

static void *bg_main(void *arg)
{
    bg_call *b = arg;
    client_run(b->ch, &b->req, &b->res);
    atomic_store(&b->done, 1);
    return NULL;
}

/* Starts a call of method in the background; keep_open holds it until
 * b->release is set. */
static void bg_start(bg_call *b, grpc_channel *ch, const char *method, const char *msg,
                     int keep_open)
{
    static const size_t one = 1;
    static const char *const msgs[1] = {"x"};
    memset(b, 0, sizeof *b);
    atomic_init(&b->release, 0);
    atomic_init(&b->done, 0);
    b->ch = ch;
    b->req.method = method;
    b->req.msgs = msgs;
    b->req.lens = &one;
    b->req.nmsgs = msg != NULL ? 1 : 0;
    b->req.keep_open = keep_open;
    b->req.release = &b->release;
    assert_int_equal(pthread_create(&b->t, NULL, bg_main, b), 0);
}

static void bg_end(bg_call *b)
{
    atomic_store(&b->release, 1);
    pthread_join(b->t, NULL);
    free(b->res.resp);
}

static pw_grpc_stats stats_when(pw_grpc_server *s, long active)
{
    pw_grpc_stats st;
    for (;;) {
        pw_grpc_server_stats_get(s, &st);
        if (st.calls_active == active) {
            return st;
        }
        usleep(1000);
    }
}

/* Streams that send nothing hold a thread each, but no worker: with 2
 * workers and 4 idle streams, a unary call is answered (within its 5 s
 * deadline), and the streams are still open afterwards. */
static void test_idle_streams_do_not_starve(void **state)
{
    fixture *f = *state;
    bg_call held[HOLDERS];
    for (int i = 0; i < HOLDERS; i++) {
        bg_start(&held[i], f->ch, "/test.v1.Echo/Hold", NULL, 1);
    }
    stats_when(f->srv, HOLDERS);

    const char *msgs[1] = {"ping"};
    size_t lens[1] = {4};
    client_req req = {
        .method = "/test.v1.Echo/Unary", .msgs = msgs, .lens = lens, .nmsgs = 1, .deadline_s = 5};
    client_result r;
    client_run(f->ch, &req, &r);
    assert_int_equal(r.status, GRPC_STATUS_OK);
    assert_string_equal(r.resp, "ping");
    free(r.resp);

    pw_grpc_stats st = stats_when(f->srv, HOLDERS); /* the unary call has ended */
    assert_int_equal(st.idle_timeouts, 0);
    for (int i = 0; i < HOLDERS; i++) {
        assert_int_equal(atomic_load(&held[i].done), 0);
    }
    for (int i = 0; i < HOLDERS; i++) {
        bg_end(&held[i]);
        assert_int_equal(held[i].res.status, GRPC_STATUS_OK);
    }
}

/* At PW_GRPC_MAX_CALLS calls in progress the next one is refused at once. */
static void test_max_calls_refused(void **state)
{
    fixture *f = *state;
    bg_call held[HOLDERS + 2];
    for (int i = 0; i < HOLDERS + 2; i++) {
        bg_start(&held[i], f->ch, "/test.v1.Echo/Hold", NULL, 1);
    }
    stats_when(f->srv, HOLDERS + 2);
    client_result r;
    unary(f->ch, "/test.v1.Echo/Unary", "x", 1, &r);
    assert_int_equal(r.status, GRPC_STATUS_RESOURCE_EXHAUSTED);
    assert_string_equal(r.details,
                        "server busy: 6 calls in progress (PW_GRPC_MAX_CALLS); retry later");
    assert_null(r.resp);
    for (int i = 0; i < HOLDERS + 2; i++) {
        bg_end(&held[i]);
        assert_int_equal(held[i].res.status, GRPC_STATUS_OK);
    }
    pw_grpc_stats st = stats_when(f->srv, 0);
    assert_int_equal(st.refused_busy, 1);
    assert_int_equal(st.calls_total, HOLDERS + 3);

    /* below the limit again: served */
    unary(f->ch, "/test.v1.Echo/Unary", "y", 1, &r);
    assert_int_equal(r.status, GRPC_STATUS_OK);
    assert_string_equal(r.resp, "y");
    free(r.resp);
}

/* Both workers busy in handler code: the next call waits
 * PW_GRPC_WORKER_WAIT_MS and ends with UNAVAILABLE. */
static void test_no_free_worker(void **state)
{
    fixture *f = *state;
    bg_call busy[2];
    for (int i = 0; i < 2; i++) {
        bg_start(&busy[i], f->ch, "/test.v1.Echo/Busy", "x", 0);
    }
    while (atomic_load(&f->st.busy_in) < 2) {
        usleep(1000);
    }
    client_result r;
    unary(f->ch, "/test.v1.Echo/Unary", "x", 1, &r);
    assert_int_equal(r.status, GRPC_STATUS_UNAVAILABLE);
    assert_string_equal(
        r.details,
        "server busy: no free worker within 200 ms (PW_GRPC_WORKER_WAIT_MS); retry later");
    atomic_store(&f->st.release_busy, 1);
    for (int i = 0; i < 2; i++) {
        bg_end(&busy[i]);
        assert_int_equal(busy[i].res.status, GRPC_STATUS_OK);
    }
    pw_grpc_stats st;
    pw_grpc_server_stats_get(f->srv, &st);
    assert_int_equal(st.refused_no_worker, 1);
}

/* A stream without a message for PW_GRPC_IDLE_TIMEOUT_MS ends with
 * DEADLINE_EXCEEDED and the reason; the handler's recv gives -1. */
static void test_idle_timeout(void **state)
{
    fixture *f = *state;
    atomic_store(&f->st.hold_rc, 99);
    bg_call b;
    bg_start(&b, f->ch, "/test.v1.Echo/Hold", NULL, 1);
    while (atomic_load(&f->st.hold_rc) == 99) {
        usleep(1000);
    }
    bg_end(&b);
    assert_int_equal(atomic_load(&f->st.hold_rc), -1);
    assert_int_equal(b.res.status, GRPC_STATUS_DEADLINE_EXCEEDED);
    assert_string_equal(b.res.details, "no message for 300 ms (PW_GRPC_IDLE_TIMEOUT_MS)");
    pw_grpc_stats st = stats_when(f->srv, 0);
    assert_int_equal(st.idle_timeouts, 1);

    /* a stream that keeps sending within the timeout is not affected */
    const char *msgs[3] = {"a", "b", "c"};
    size_t lens[3] = {1, 1, 1};
    client_req req = {.method = "/test.v1.Echo/Hold", .msgs = msgs, .lens = lens, .nmsgs = 3};
    client_result r;
    client_run(f->ch, &req, &r);
    assert_int_equal(r.status, GRPC_STATUS_OK);
    assert_int_equal(atomic_load(&f->st.hold_rc), 0);
}

/* PW_GRPC_MAX_CALL_MS is the call's deadline when the client sets none. */
static void test_call_lifetime(void **state)
{
    fixture *f = *state;
    atomic_store(&f->st.hold_rc, 99);
    bg_call b;
    bg_start(&b, f->ch, "/test.v1.Echo/Hold", NULL, 1);
    while (atomic_load(&f->st.hold_rc) == 99) {
        usleep(1000);
    }
    bg_end(&b);
    long long left = atomic_load(&f->st.deadline_ms);
    assert_true(left > 0 && left <= 500);
    assert_int_equal(b.res.status, GRPC_STATUS_DEADLINE_EXCEEDED);
    assert_string_equal(b.res.details,
                        "call exceeded the server's limit of 500 ms (PW_GRPC_MAX_CALL_MS)");
    pw_grpc_stats st = stats_when(f->srv, 0);
    assert_int_equal(st.lifetime_exceeded, 1);
    assert_int_equal(st.idle_timeouts, 0);
}

static void test_limits_from_env(void **state)
{
    (void)state;
    pw_grpc_limits l, d;
    pw_grpc_limits_default(&d);
    assert_int_equal(d.max_calls, 128);
    assert_int_equal(d.max_streams, 100);
    assert_int_equal(d.idle_timeout_ms, 30000);
    assert_int_equal(d.max_call_ms, 600000);
    assert_int_equal(d.worker_wait_ms, 5000);
    assert_int_equal(d.keepalive_time_ms, 60000);
    assert_int_equal(d.keepalive_timeout_ms, 20000);
    assert_int_equal(d.max_connection_idle_ms, 300000);

    char err[256] = "";
    l = d;
    setenv("PW_GRPC_IDLE_TIMEOUT_MS", "1500", 1);
    setenv("PW_GRPC_MAX_CALLS", "64", 1);
    assert_int_equal(pw_grpc_limits_from_env(&l, err, sizeof err), 0);
    assert_int_equal(l.idle_timeout_ms, 1500);
    assert_int_equal(l.max_calls, 64);
    assert_int_equal(l.max_streams, 100);

    /* a bad value is refused and changes nothing */
    l = d;
    setenv("PW_GRPC_MAX_STREAMS_PER_CONNECTION", "0", 1);
    assert_int_equal(pw_grpc_limits_from_env(&l, err, sizeof err), -1);
    assert_string_equal(err, "PW_GRPC_MAX_STREAMS_PER_CONNECTION: 0 out of range [1, 65536]");
    assert_memory_equal(&l, &d, sizeof l);
    assert_null(pw_grpc_server_new("127.0.0.1:1", 1024, err, sizeof err));
    assert_string_equal(err, "PW_GRPC_MAX_STREAMS_PER_CONNECTION: 0 out of range [1, 65536]");

    setenv("PW_GRPC_MAX_STREAMS_PER_CONNECTION", "many", 1);
    assert_int_equal(pw_grpc_limits_from_env(&l, err, sizeof err), -1);
    assert_string_equal(err, "PW_GRPC_MAX_STREAMS_PER_CONNECTION: not an integer: \"many\"");
    unsetenv("PW_GRPC_MAX_STREAMS_PER_CONNECTION");
    unsetenv("PW_GRPC_IDLE_TIMEOUT_MS");
    unsetenv("PW_GRPC_MAX_CALLS");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_idle_streams_do_not_starve, setup_long_idle, teardown),
        cmocka_unit_test_setup_teardown(test_max_calls_refused, setup_long_idle, teardown),
        cmocka_unit_test_setup_teardown(test_no_free_worker, setup_long_idle, teardown),
        cmocka_unit_test_setup_teardown(test_idle_timeout, setup_short_idle, teardown),
        cmocka_unit_test_setup_teardown(test_call_lifetime, setup_short_life, teardown),
        cmocka_unit_test(test_limits_from_env),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
