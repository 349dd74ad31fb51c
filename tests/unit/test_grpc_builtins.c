/* Unit test for the services every pw_grpc server has: grpc.health.v1.Health
 * (Check for "", a registered service and an unknown one; Watch seeing
 * NOT_SERVING, SERVING again and the stop) and server reflection v1 and
 * v1alpha (list_services, file_containing_symbol, file_by_filename, errors),
 * decoded with the protobuf-c messages of gen/. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>

#include "google/protobuf/descriptor.pb-c.h"
#include "grpc/health/v1/health.pb-c.h"
#include "grpc/reflection/v1/reflection.pb-c.h"
#include "grpc_client.h"
#include "pw_grpc.h"

#define SERVING GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
#define NOT_SERVING GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING
#define REFL_V1 "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
#define REFL_V1ALPHA "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"

typedef Grpc__Reflection__V1__ServerReflectionRequest refl_req;
typedef Grpc__Reflection__V1__ServerReflectionResponse refl_resp;

typedef struct {
    pw_grpc_server *srv;
    grpc_channel *ch;
    int stopped;
} fixture;

static int setup_max_calls(void **state, long max_calls)
{
    fixture *f = calloc(1, sizeof *f);
    char err[256] = "", target[64];
    snprintf(target, sizeof target, "127.0.0.1:%d", free_port());
    pw_grpc_limits l;
    pw_grpc_limits_default(&l);
    l.max_calls = max_calls;
    f->srv = pw_grpc_server_new_limits(target, 4096, &l, err, sizeof err);
    assert_non_null(f->srv);
    assert_int_equal(
        pw_grpc_server_add_method(f->srv, "/test.v1.Echo/Unary", grpc_test_echo_handler, NULL), 0);
    assert_int_equal(
        pw_grpc_server_add_method(f->srv, "/test.v1.Other/Unary", grpc_test_echo_handler, NULL), 0);
    assert_int_equal(pw_grpc_server_start(f->srv, 2, err, sizeof err), 0);
    grpc_init();
    grpc_channel_credentials *creds = grpc_insecure_credentials_create();
    f->ch = grpc_channel_create(target, creds, NULL);
    grpc_channel_credentials_release(creds);
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return setup_max_calls(state, 128);
}

/* at most max_calls / 4 = 1 Health.Watch */
static int setup_one_watch(void **state)
{
    return setup_max_calls(state, 4);
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

/* ---- health -------------------------------------------------------------- */

static void health_check(grpc_channel *ch, const char *service, client_result *r, int *status)
{
    Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    req.service = (char *)service;
    uint8_t buf[256];
    size_t n = grpc__health__v1__health_check_request__pack(&req, buf);
    unary(ch, "/grpc.health.v1.Health/Check", (const char *)buf, n, r);
    *status = -1;
    if (r->resp != NULL) {
        Grpc__Health__V1__HealthCheckResponse *resp =
            grpc__health__v1__health_check_response__unpack(NULL, r->resp_len,
                                                            (const uint8_t *)r->resp);
        assert_non_null(resp);
        *status = resp->status;
        grpc__health__v1__health_check_response__free_unpacked(resp, NULL);
    }
    free(r->resp);
}

static void test_health_check(void **state)
{
    fixture *f = *state;
    client_result r;
    int status;
    const char *known[] = {"", "test.v1.Echo", "test.v1.Other", "grpc.health.v1.Health",
                           "grpc.reflection.v1.ServerReflection"};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        health_check(f->ch, known[i], &r, &status);
        assert_int_equal(r.status, GRPC_STATUS_OK);
        assert_int_equal(status, SERVING);
    }
    health_check(f->ch, "test.v1.Nope", &r, &status);
    assert_int_equal(r.status, GRPC_STATUS_NOT_FOUND);
    assert_string_equal(r.details, "unknown service \"test.v1.Nope\"");
    assert_int_equal(status, -1);

    pw_grpc_server_set_serving(f->srv, 0);
    health_check(f->ch, "test.v1.Echo", &r, &status);
    assert_int_equal(r.status, GRPC_STATUS_OK);
    assert_int_equal(status, NOT_SERVING);
    pw_grpc_server_set_serving(f->srv, 1);
    health_check(f->ch, "", &r, &status);
    assert_int_equal(status, SERVING);

    /* a request that does not decode */
    unary(f->ch, "/grpc.health.v1.Health/Check", "\xff\xff", 2, &r);
    assert_int_equal(r.status, GRPC_STATUS_INVALID_ARGUMENT);
    assert_string_equal(r.details, "HealthCheckRequest does not decode");
    free(r.resp);
}

typedef struct {
    grpc_channel *ch;
    atomic_int n;
    int statuses[8];
    grpc_status_code status;
} watcher;

static void watch_batch(grpc_call *call, grpc_completion_queue *cq, grpc_op *ops, size_t n)
{
    static char tag;
    assert_int_equal(grpc_call_start_batch(call, ops, n, &tag, NULL), GRPC_CALL_OK);
    grpc_event ev = grpc_completion_queue_pluck(cq, &tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    assert_int_equal(ev.type, GRPC_OP_COMPLETE);
}

typedef void (*on_message)(void *ctx, const uint8_t *msg, size_t len);

/* A call that sends msgs, half-closes, hands every response to fn and
 * returns the status. */
static grpc_status_code stream_call(grpc_channel *ch, const char *method, const uint8_t *msg,
                                    size_t len, size_t times, on_message fn, void *ctx)
{
    grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
    grpc_call *call = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
                                               grpc_slice_from_static_string(method), NULL,
                                               gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    grpc_metadata_array initial, trailing;
    grpc_metadata_array_init(&initial);
    grpc_metadata_array_init(&trailing);
    grpc_op ops[2];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    watch_batch(call, cq, ops, 1);
    for (size_t i = 0; i < times; i++) {
        grpc_slice s = grpc_slice_from_copied_buffer((const char *)msg, len);
        grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
        grpc_slice_unref(s);
        memset(ops, 0, sizeof ops);
        ops[0].op = GRPC_OP_SEND_MESSAGE;
        ops[0].data.send_message.send_message = bb;
        watch_batch(call, cq, ops, 1);
        grpc_byte_buffer_destroy(bb);
    }
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[1].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[1].data.recv_initial_metadata.recv_initial_metadata = &initial;
    watch_batch(call, cq, ops, 2);
    for (;;) {
        grpc_byte_buffer *bb = NULL;
        memset(ops, 0, sizeof ops);
        ops[0].op = GRPC_OP_RECV_MESSAGE;
        ops[0].data.recv_message.recv_message = &bb;
        watch_batch(call, cq, ops, 1);
        if (bb == NULL) {
            break;
        }
        grpc_byte_buffer_reader r;
        grpc_byte_buffer_reader_init(&r, bb);
        grpc_slice all = grpc_byte_buffer_reader_readall(&r);
        grpc_byte_buffer_reader_destroy(&r);
        fn(ctx, GRPC_SLICE_START_PTR(all), GRPC_SLICE_LENGTH(all));
        grpc_slice_unref(all);
        grpc_byte_buffer_destroy(bb);
    }
    grpc_status_code status;
    grpc_slice details;
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[0].data.recv_status_on_client.trailing_metadata = &trailing;
    ops[0].data.recv_status_on_client.status = &status;
    ops[0].data.recv_status_on_client.status_details = &details;
    watch_batch(call, cq, ops, 1);
    grpc_slice_unref(details);
    grpc_metadata_array_destroy(&initial);
    grpc_metadata_array_destroy(&trailing);
    grpc_call_unref(call);
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_pluck(cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(cq);
    return status;
}

static void watch_message(void *ctx, const uint8_t *msg, size_t len)
{
    watcher *w = ctx;
    Grpc__Health__V1__HealthCheckResponse *resp =
        grpc__health__v1__health_check_response__unpack(NULL, len, msg);
    int i = atomic_load(&w->n);
    if (i < 8) {
        w->statuses[i] = resp != NULL ? (int)resp->status : -1;
    }
    if (resp != NULL) {
        grpc__health__v1__health_check_response__free_unpacked(resp, NULL);
    }
    atomic_store(&w->n, i + 1);
}

/* Health.Watch for "test.v1.Echo": every status until the stream ends. */
static void *watch_main(void *arg)
{
    watcher *w = arg;
    Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    req.service = "test.v1.Echo";
    uint8_t buf[64];
    size_t n = grpc__health__v1__health_check_request__pack(&req, buf);
    w->status = stream_call(w->ch, "/grpc.health.v1.Health/Watch", buf, n, 1, watch_message, w);
    return NULL;
}

static void wait_count(atomic_int *n, int want)
{
    while (atomic_load(n) < want) {
        usleep(1000);
    }
}

static void test_health_watch(void **state)
{
    fixture *f = *state;
    watcher w;
    memset(&w, 0, sizeof w);
    w.ch = f->ch;
    atomic_init(&w.n, 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, watch_main, &w), 0);
    wait_count(&w.n, 1);
    pw_grpc_server_set_serving(f->srv, 0);
    wait_count(&w.n, 2);
    pw_grpc_server_set_serving(f->srv, 1);
    wait_count(&w.n, 3);
    pw_grpc_server_stop(f->srv, 2000); /* the watch ends with the server */
    pthread_join(t, NULL);
    assert_int_equal(atomic_load(&w.n), 4);
    assert_int_equal(w.statuses[0], SERVING);
    assert_int_equal(w.statuses[1], NOT_SERVING);
    assert_int_equal(w.statuses[2], SERVING);
    assert_int_equal(w.statuses[3], NOT_SERVING);
    assert_int_equal(w.status, GRPC_STATUS_OK);
}

static void count_message(void *ctx, const uint8_t *msg, size_t len)
{
    (void)msg;
    (void)len;
    (*(int *)ctx)++;
}

static void test_health_watch_cap(void **state)
{
    fixture *f = *state;
    watcher w;
    memset(&w, 0, sizeof w);
    w.ch = f->ch;
    atomic_init(&w.n, 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, watch_main, &w), 0);
    wait_count(&w.n, 1);

    Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    uint8_t buf[16];
    size_t n = grpc__health__v1__health_check_request__pack(&req, buf);
    int got = 0;
    assert_int_equal(
        stream_call(f->ch, "/grpc.health.v1.Health/Watch", buf, n, 1, count_message, &got),
        GRPC_STATUS_RESOURCE_EXHAUSTED);
    assert_int_equal(got, 0);
    client_result r;
    int status;
    health_check(f->ch, "", &r, &status); /* Check still answers */
    assert_int_equal(status, SERVING);

    pw_grpc_server_stop(f->srv, 2000);
    pthread_join(t, NULL);
    assert_int_equal(w.status, GRPC_STATUS_OK);
}

/* ---- reflection ---------------------------------------------------------- */

/* One reflection request on its own stream; the decoded response. */
static refl_resp *reflect(grpc_channel *ch, const char *path, const refl_req *req)
{
    uint8_t buf[512];
    size_t n = grpc__reflection__v1__server_reflection_request__pack(req, buf);
    client_result r;
    unary(ch, path, (const char *)buf, n, &r);
    assert_int_equal(r.status, GRPC_STATUS_OK);
    assert_non_null(r.resp);
    refl_resp *resp = grpc__reflection__v1__server_reflection_response__unpack(
        NULL, r.resp_len, (const uint8_t *)r.resp);
    free(r.resp);
    assert_non_null(resp);
    return resp;
}

static void test_reflection_list_services(void **state)
{
    fixture *f = *state;
    const char *paths[] = {REFL_V1, REFL_V1ALPHA};
    const char *want[] = {"test.v1.Echo", "test.v1.Other", "grpc.health.v1.Health",
                          "grpc.reflection.v1.ServerReflection",
                          "grpc.reflection.v1alpha.ServerReflection"};
    for (size_t p = 0; p < 2; p++) {
        refl_req req = GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__INIT;
        req.host = "localhost";
        req.message_request_case =
            GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES;
        req.list_services = "*";
        refl_resp *resp = reflect(f->ch, paths[p], &req);
        assert_string_equal(resp->valid_host, "localhost");
        assert_non_null(resp->original_request);
        assert_string_equal(resp->original_request->list_services, "*");
        assert_int_equal(
            resp->message_response_case,
            GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE);
        assert_int_equal(resp->list_services_response->n_service, 5);
        for (size_t i = 0; i < 5; i++) {
            assert_string_equal(resp->list_services_response->service[i]->name, want[i]);
        }
        grpc__reflection__v1__server_reflection_response__free_unpacked(resp, NULL);
    }
}

/* The file names of a file_descriptor_response, in order, joined by ",". */
static void file_names(const refl_resp *resp, char *out, size_t outlen)
{
    assert_int_equal(
        resp->message_response_case,
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE);
    out[0] = '\0';
    const Grpc__Reflection__V1__FileDescriptorResponse *fd = resp->file_descriptor_response;
    for (size_t i = 0; i < fd->n_file_descriptor_proto; i++) {
        Google__Protobuf__FileDescriptorProto *file =
            google__protobuf__file_descriptor_proto__unpack(NULL, fd->file_descriptor_proto[i].len,
                                                            fd->file_descriptor_proto[i].data);
        assert_non_null(file);
        size_t used = strlen(out);
        snprintf(out + used, outlen - used, "%s%s", i ? "," : "", file->name);
        google__protobuf__file_descriptor_proto__free_unpacked(file, NULL);
    }
}

static void test_reflection_files(void **state)
{
    fixture *f = *state;
    struct {
        int by_name;
        const char *what, *files;
    } cases[] = {
        {0, "iot.v1.IngestService", "iot/v1/ingest.proto,iot/v1/telemetry.proto"},
        {0, "iot.v1.IngestService.PublishStream", "iot/v1/ingest.proto,iot/v1/telemetry.proto"},
        {0, "iot.v1.MetricsService", "iot/v1/metrics.proto"},
        {0, "grpc.health.v1.HealthCheckResponse.ServingStatus", "grpc/health/v1/health.proto"},
        {0, "grpc.reflection.v1alpha.ServerReflection", "grpc/reflection/v1alpha/reflection.proto"},
        {1, "iot/v1/ingest.proto", "iot/v1/ingest.proto,iot/v1/telemetry.proto"},
        {1, "grpc/health/v1/health.proto", "grpc/health/v1/health.proto"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        refl_req req = GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__INIT;
        if (cases[i].by_name) {
            req.message_request_case =
                GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME;
            req.file_by_filename = (char *)cases[i].what;
        } else {
            req.message_request_case =
                GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL;
            req.file_containing_symbol = (char *)cases[i].what;
        }
        refl_resp *resp = reflect(f->ch, i % 2 ? REFL_V1ALPHA : REFL_V1, &req);
        char names[512];
        file_names(resp, names, sizeof names);
        assert_string_equal(names, cases[i].files);
        grpc__reflection__v1__server_reflection_response__free_unpacked(resp, NULL);
    }
}

static void test_reflection_errors(void **state)
{
    fixture *f = *state;
    refl_req req = GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__INIT;
    req.message_request_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL;
    req.file_containing_symbol = "iot.v1.Nope";
    refl_resp *resp = reflect(f->ch, REFL_V1, &req);
    assert_int_equal(
        resp->message_response_case,
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE);
    assert_int_equal(resp->error_response->error_code, 5);
    assert_string_equal(resp->error_response->error_message, "symbol not found: iot.v1.Nope");
    grpc__reflection__v1__server_reflection_response__free_unpacked(resp, NULL);

    /* a prefix of a real name is not that name */
    req.file_containing_symbol = "iot.v1.Ingest";
    resp = reflect(f->ch, REFL_V1, &req);
    assert_int_equal(resp->error_response->error_code, 5);
    grpc__reflection__v1__server_reflection_response__free_unpacked(resp, NULL);

    req.message_request_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME;
    req.file_by_filename = "nope.proto";
    resp = reflect(f->ch, REFL_V1, &req);
    assert_string_equal(resp->error_response->error_message, "file not found: nope.proto");
    grpc__reflection__v1__server_reflection_response__free_unpacked(resp, NULL);

    /* no extensions in proto/: a known type has none */
    req.message_request_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_ALL_EXTENSION_NUMBERS_OF_TYPE;
    req.all_extension_numbers_of_type = "grpc.health.v1.HealthCheckRequest";
    resp = reflect(f->ch, REFL_V1, &req);
    assert_int_equal(
        resp->message_response_case,
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ALL_EXTENSION_NUMBERS_RESPONSE);
    assert_string_equal(resp->all_extension_numbers_response->base_type_name,
                        "grpc.health.v1.HealthCheckRequest");
    assert_int_equal(resp->all_extension_numbers_response->n_extension_number, 0);
    grpc__reflection__v1__server_reflection_response__free_unpacked(resp, NULL);

    client_result r;
    unary(f->ch, REFL_V1, "\xff", 1, &r);
    assert_int_equal(r.status, GRPC_STATUS_INVALID_ARGUMENT);
    assert_string_equal(r.details, "ServerReflectionRequest does not decode");
    free(r.resp);
}

static void count_services(void *ctx, const uint8_t *msg, size_t len)
{
    int *counts = ctx;
    refl_resp *resp = grpc__reflection__v1__server_reflection_response__unpack(NULL, len, msg);
    assert_non_null(resp);
    assert_non_null(resp->list_services_response);
    counts[counts[0] + 1] = (int)resp->list_services_response->n_service;
    counts[0]++;
    grpc__reflection__v1__server_reflection_response__free_unpacked(resp, NULL);
}

/* Several requests on one stream: one answer each. */
static void test_reflection_stream(void **state)
{
    fixture *f = *state;
    refl_req req = GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__INIT;
    req.message_request_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES;
    req.list_services = "";
    uint8_t a[64];
    size_t alen = grpc__reflection__v1__server_reflection_request__pack(&req, a);
    int counts[8] = {0};
    assert_int_equal(stream_call(f->ch, REFL_V1, a, alen, 3, count_services, counts),
                     GRPC_STATUS_OK);
    assert_int_equal(counts[0], 3);
    assert_int_equal(counts[1], 5);
    assert_int_equal(counts[2], 5);
    assert_int_equal(counts[3], 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_health_check, setup, teardown),
        cmocka_unit_test_setup_teardown(test_health_watch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_health_watch_cap, setup_one_watch, teardown),
        cmocka_unit_test_setup_teardown(test_reflection_list_services, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reflection_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reflection_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reflection_stream, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
