/* Unit test for pw_grpc: a real server on a loopback port, called with the
 * gRPC C core client API — unary echo, client streaming, metadata and
 * deadline, handler status codes, the receive size limit, and stopping with
 * a call still in flight. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "grpc_client.h"
#include "pw_grpc.h"

#define MAX_RECV 1024

typedef struct {
    atomic_int recv_calls; /* times the "hold" handler entered recv */
    atomic_int hold_result;
} hold_state;

/* ---- server handlers ----------------------------------------------------- */

static void echo_handler(pw_grpc_call *call, void *ctx)
{
    (void)ctx;
    uint8_t *buf;
    size_t len;
    int rc = pw_grpc_call_recv(call, &buf, &len);
    if (rc != 1) {
        pw_grpc_call_finish(call, NULL, 0, GRPC_STATUS_INVALID_ARGUMENT, "no request");
        return;
    }
    if (len == 3 && memcmp(buf, "bad", 3) == 0) {
        pw_grpc_call_finish(call, NULL, 0, GRPC_STATUS_INVALID_ARGUMENT, "value: bad input");
    } else {
        pw_grpc_call_finish(call, buf, len, GRPC_STATUS_OK, NULL);
    }
    free(buf);
}

static void count_handler(pw_grpc_call *call, void *ctx)
{
    (void)ctx;
    size_t count = 0, bytes = 0;
    uint8_t *buf;
    size_t len;
    int rc;
    while ((rc = pw_grpc_call_recv(call, &buf, &len)) == 1) {
        count++;
        bytes += len;
        free(buf);
    }
    if (rc < 0) {
        pw_grpc_call_finish(call, NULL, 0, GRPC_STATUS_CANCELLED, "stream failed");
        return;
    }
    char out[64];
    int n = snprintf(out, sizeof out, "%zu/%zu", count, bytes);
    pw_grpc_call_finish(call, (const uint8_t *)out, (size_t)n, GRPC_STATUS_OK, NULL);
}

/* Answers "<x-pw-key metadata>|<1 if a deadline in (0, 120 s] was seen>". */
static void meta_handler(pw_grpc_call *call, void *ctx)
{
    (void)ctx;
    uint8_t *buf;
    size_t len;
    if (pw_grpc_call_recv(call, &buf, &len) == 1) {
        free(buf);
    }
    char key[16];
    const char *v = pw_grpc_call_metadata(call, "x-pw-key", key, sizeof key);
    int64_t left = pw_grpc_call_deadline_ms(call);
    char out[64];
    int n = snprintf(out, sizeof out, "%s|%d", v ? v : "(none)", left > 0 && left <= 120000);
    pw_grpc_call_finish(call, (const uint8_t *)out, (size_t)n, GRPC_STATUS_OK, NULL);
}

/* Reads until the stream fails; records what recv returned. */
static void hold_handler(pw_grpc_call *call, void *ctx)
{
    hold_state *st = ctx;
    uint8_t *buf;
    size_t len;
    int rc;
    for (;;) {
        atomic_fetch_add(&st->recv_calls, 1);
        rc = pw_grpc_call_recv(call, &buf, &len);
        if (rc != 1) {
            break;
        }
        free(buf);
    }
    atomic_store(&st->hold_result, rc);
    pw_grpc_call_finish(call, NULL, 0, GRPC_STATUS_UNAVAILABLE, "stopping");
}

/* ---- fixture ------------------------------------------------------------- */

typedef struct {
    pw_grpc_server *srv;
    grpc_channel *ch;
    hold_state hold;
    char target[64];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    char err[256] = "";
    snprintf(f->target, sizeof f->target, "127.0.0.1:%d", free_port());
    f->srv = pw_grpc_server_new(f->target, MAX_RECV, err, sizeof err);
    assert_non_null(f->srv);
    assert_int_equal(pw_grpc_server_add_method(f->srv, "/test.v1.Echo/Unary", echo_handler, NULL),
                     0);
    assert_int_equal(pw_grpc_server_add_method(f->srv, "/test.v1.Echo/Count", count_handler, NULL),
                     0);
    assert_int_equal(pw_grpc_server_add_method(f->srv, "/test.v1.Echo/Meta", meta_handler, NULL),
                     0);
    assert_int_equal(
        pw_grpc_server_add_method(f->srv, "/test.v1.Echo/Hold", hold_handler, &f->hold), 0);
    assert_int_equal(pw_grpc_server_start(f->srv, 3, err, sizeof err), 0);

    grpc_init();
    grpc_channel_credentials *creds = grpc_insecure_credentials_create();
    f->ch = grpc_channel_create(f->target, creds, NULL);
    grpc_channel_credentials_release(creds);
    assert_non_null(f->ch);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    grpc_channel_destroy(f->ch);
    pw_grpc_server_stop(f->srv, 2000);
    pw_grpc_server_free(f->srv);
    grpc_shutdown();
    free(f);
    return 0;
}

/* ---- tests --------------------------------------------------------------- */

static void test_unary_echo(void **state)
{
    fixture *f = *state;
    client_result r;
    static const char payload[] = "hello\0world"; /* binary-safe: embedded NUL */
    unary(f->ch, "/test.v1.Echo/Unary", payload, sizeof payload - 1, &r);
    assert_int_equal(r.status, GRPC_STATUS_OK);
    assert_non_null(r.resp);
    assert_int_equal(r.resp_len, sizeof payload - 1);
    assert_memory_equal(r.resp, payload, sizeof payload - 1);
    free(r.resp);

    /* an empty message is a message, not the end of the stream */
    unary(f->ch, "/test.v1.Echo/Unary", "", 0, &r);
    assert_int_equal(r.status, GRPC_STATUS_OK);
    assert_non_null(r.resp);
    assert_int_equal(r.resp_len, 0);
    free(r.resp);
}

static void test_many_sequential_calls(void **state)
{
    fixture *f = *state;
    for (int i = 0; i < 50; i++) {
        char msg[32];
        int n = snprintf(msg, sizeof msg, "call-%d", i);
        client_result r;
        unary(f->ch, "/test.v1.Echo/Unary", msg, (size_t)n, &r);
        assert_int_equal(r.status, GRPC_STATUS_OK);
        assert_string_equal(r.resp, msg);
        free(r.resp);
    }
}

static void test_client_stream_count(void **state)
{
    fixture *f = *state;
    const char *msgs[5] = {"a", "bb", "ccc", "dddd", "eeeee"};
    size_t lens[5] = {1, 2, 3, 4, 5};
    client_req req = {.method = "/test.v1.Echo/Count", .msgs = msgs, .lens = lens, .nmsgs = 5};
    client_result r;
    client_run(f->ch, &req, &r);
    assert_int_equal(r.status, GRPC_STATUS_OK);
    assert_string_equal(r.resp, "5/15");
    free(r.resp);

    req.nmsgs = 0; /* empty stream */
    client_run(f->ch, &req, &r);
    assert_int_equal(r.status, GRPC_STATUS_OK);
    assert_string_equal(r.resp, "0/0");
    free(r.resp);
}

static void test_invalid_argument_status(void **state)
{
    fixture *f = *state;
    client_result r;
    unary(f->ch, "/test.v1.Echo/Unary", "bad", 3, &r);
    assert_int_equal(r.status, GRPC_STATUS_INVALID_ARGUMENT);
    assert_string_equal(r.details, "value: bad input");
    assert_null(r.resp);
}

static void test_message_too_large(void **state)
{
    fixture *f = *state;
    size_t len = MAX_RECV * 2;
    char *big = malloc(len);
    memset(big, 'x', len);
    client_result r;
    unary(f->ch, "/test.v1.Echo/Unary", big, len, &r);
    assert_int_equal(r.status, GRPC_STATUS_RESOURCE_EXHAUSTED);
    assert_null(r.resp);
    free(r.resp);

    /* exactly at the limit is accepted */
    unary(f->ch, "/test.v1.Echo/Unary", big, MAX_RECV, &r);
    assert_int_equal(r.status, GRPC_STATUS_OK);
    assert_int_equal(r.resp_len, MAX_RECV);
    free(r.resp);
    free(big);
}

static void test_metadata_and_deadline(void **state)
{
    fixture *f = *state;
    const char *msgs[1] = {"x"};
    size_t lens[1] = {1};
    client_req req = {.method = "/test.v1.Echo/Meta",
                      .msgs = msgs,
                      .lens = lens,
                      .nmsgs = 1,
                      .meta_key = "x-pw-key",
                      .meta_value = "sensor-a",
                      .deadline_s = 60};
    client_result r;
    client_run(f->ch, &req, &r);
    assert_int_equal(r.status, GRPC_STATUS_OK);
    assert_string_equal(r.resp, "sensor-a|1");
    free(r.resp);

    req.meta_key = NULL;
    req.deadline_s = 0;
    client_run(f->ch, &req, &r);
    assert_int_equal(r.status, GRPC_STATUS_OK);
    assert_string_equal(r.resp, "(none)|0");
    free(r.resp);
}

static void test_unknown_method(void **state)
{
    fixture *f = *state;
    client_result r;
    unary(f->ch, "/test.v1.Echo/Nope", "x", 1, &r);
    assert_int_equal(r.status, GRPC_STATUS_UNIMPLEMENTED);
    free(r.resp);
}

typedef struct {
    grpc_channel *ch;
    int id;
    int ok;
} para_arg;

static void *para_main(void *arg)
{
    para_arg *p = arg;
    p->ok = 0;
    for (int i = 0; i < 25; i++) {
        char msg[32];
        int n = snprintf(msg, sizeof msg, "t%d-%d", p->id, i);
        client_result r;
        unary(p->ch, "/test.v1.Echo/Unary", msg, (size_t)n, &r);
        if (r.status == GRPC_STATUS_OK && r.resp != NULL && strcmp(r.resp, msg) == 0) {
            p->ok++;
        }
        free(r.resp);
    }
    return NULL;
}

/* More concurrent clients than workers: calls queue and all complete. */
static void test_concurrent_clients(void **state)
{
    fixture *f = *state;
    pthread_t t[6];
    para_arg args[6];
    for (int i = 0; i < 6; i++) {
        args[i].ch = f->ch;
        args[i].id = i;
        assert_int_equal(pthread_create(&t[i], NULL, para_main, &args[i]), 0);
    }
    for (int i = 0; i < 6; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(args[i].ok, 25);
    }
}

static void test_bad_address(void **state)
{
    (void)state;
    char err[256] = "";
    pw_grpc_server *s = pw_grpc_server_new("256.1.1.1:1", 1024, err, sizeof err);
    assert_non_null(s);
    assert_int_equal(pw_grpc_server_add_method(s, "/x.Y/Z", echo_handler, NULL), 0);
    assert_int_equal(pw_grpc_server_start(s, 1, err, sizeof err), -1);
    assert_string_equal(err, "gRPC: cannot listen on 256.1.1.1:1");
    pw_grpc_server_free(s);

    /* never started: free alone releases everything */
    s = pw_grpc_server_new("127.0.0.1:1", 1024, err, sizeof err);
    assert_non_null(s);
    pw_grpc_server_free(s);
    assert_null(pw_grpc_server_new("", 1024, err, sizeof err));
}

typedef struct {
    fixture *f;
    client_req req;
    client_result res;
} hold_client;

static void *hold_client_main(void *arg)
{
    hold_client *hc = arg;
    client_run(hc->f->ch, &hc->req, &hc->res);
    return NULL;
}

/* Stop with a call blocked in recv: after the grace period the call is
 * cancelled, the handler sees -1 and stop returns. */
static void test_stop_cancels_in_flight(void **state)
{
    fixture *f = *state;
    atomic_int sent_all, release;
    atomic_init(&sent_all, 0);
    atomic_init(&release, 0);
    const char *msgs[1] = {"first"};
    size_t lens[1] = {5};
    hold_client hc = {.f = f,
                      .req = {.method = "/test.v1.Echo/Hold",
                              .msgs = msgs,
                              .lens = lens,
                              .nmsgs = 1,
                              .keep_open = 1,
                              .sent_all = &sent_all,
                              .release = &release}};
    atomic_store(&f->hold.hold_result, 99);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, hold_client_main, &hc), 0);
    /* wait until the handler consumed the first message and waits again */
    while (atomic_load(&f->hold.recv_calls) < 2) {
        usleep(1000);
    }

    pw_grpc_server_stop(f->srv, 50);
    assert_int_equal(atomic_load(&f->hold.hold_result), -1);

    atomic_store(&release, 1);
    pthread_join(t, NULL);
    assert_int_not_equal(hc.res.status, GRPC_STATUS_OK);
    free(hc.res.resp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_unary_echo, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_sequential_calls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_stream_count, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_argument_status, setup, teardown),
        cmocka_unit_test_setup_teardown(test_message_too_large, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metadata_and_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_method, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_clients, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_cancels_in_flight, setup, teardown),
        cmocka_unit_test(test_bad_address),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
