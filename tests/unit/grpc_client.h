/* grpc_client: a gRPC C core client for the pw_grpc unit tests — a free
 * loopback port, and calls that send messages (optionally holding the stream
 * open), half-close and collect the first response and the status. Include
 * after cmocka.h. Every function is static inline: each test uses a part. */
#ifndef PW_TEST_GRPC_CLIENT_H
#define PW_TEST_GRPC_CLIENT_H

#include <arpa/inet.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pw_grpc.h"

/* ---- client helpers ------------------------------------------------------ */

static inline int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t alen = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    close(fd);
    return ntohs(a.sin_port);
}

typedef struct {
    grpc_status_code status;
    char details[256];
    char *resp; /* NUL-terminated copy, NULL if no response */
    size_t resp_len;
} client_result;

static inline void client_batch(grpc_call *call, grpc_completion_queue *cq, const grpc_op *ops,
                                size_t n, int *success)
{
    static char tag;
    assert_int_equal(grpc_call_start_batch(call, ops, n, &tag, NULL), GRPC_CALL_OK);
    grpc_event ev = grpc_completion_queue_pluck(cq, &tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    assert_int_equal(ev.type, GRPC_OP_COMPLETE);
    *success = ev.success;
}

typedef struct {
    const char *method;
    const char *const *msgs;
    const size_t *lens;
    size_t nmsgs;
    const char *meta_key, *meta_value;
    int deadline_s; /* 0: none */
    int keep_open;  /* do not half-close until *release is set */
    atomic_int *sent_all;
    atomic_int *release;
} client_req;

static inline void client_run(grpc_channel *ch, const client_req *req, client_result *out)
{
    grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
    gpr_timespec deadline = req->deadline_s
                                ? gpr_time_add(gpr_now(GPR_CLOCK_REALTIME),
                                               gpr_time_from_seconds(req->deadline_s, GPR_TIMESPAN))
                                : gpr_inf_future(GPR_CLOCK_REALTIME);
    grpc_slice method = grpc_slice_from_static_string(req->method);
    grpc_call *call = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, method, NULL,
                                               deadline, NULL);
    assert_non_null(call);

    int ok;
    grpc_metadata md;
    memset(&md, 0, sizeof md);
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_SEND_INITIAL_METADATA;
    if (req->meta_key) {
        md.key = grpc_slice_from_static_string(req->meta_key);
        md.value = grpc_slice_from_static_string(req->meta_value);
        op.data.send_initial_metadata.count = 1;
        op.data.send_initial_metadata.metadata = &md;
    }
    client_batch(call, cq, &op, 1, &ok);
    assert_true(ok);

    for (size_t i = 0; i < req->nmsgs; i++) {
        grpc_slice s = grpc_slice_from_copied_buffer(req->msgs[i], req->lens[i]);
        grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
        grpc_slice_unref(s);
        memset(&op, 0, sizeof op);
        op.op = GRPC_OP_SEND_MESSAGE;
        op.data.send_message.send_message = bb;
        client_batch(call, cq, &op, 1, &ok); /* may fail once the server refused */
        grpc_byte_buffer_destroy(bb);
    }
    if (req->sent_all)
        atomic_store(req->sent_all, 1);
    while (req->keep_open && !atomic_load(req->release))
        usleep(1000);

    grpc_op ops[4];
    memset(ops, 0, sizeof ops);
    grpc_metadata_array initial, trailing;
    grpc_metadata_array_init(&initial);
    grpc_metadata_array_init(&trailing);
    grpc_byte_buffer *resp = NULL;
    grpc_slice details;
    ops[0].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[1].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[1].data.recv_initial_metadata.recv_initial_metadata = &initial;
    ops[2].op = GRPC_OP_RECV_MESSAGE;
    ops[2].data.recv_message.recv_message = &resp;
    ops[3].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[3].data.recv_status_on_client.trailing_metadata = &trailing;
    ops[3].data.recv_status_on_client.status = &out->status;
    ops[3].data.recv_status_on_client.status_details = &details;
    client_batch(call, cq, ops, 4, &ok);

    size_t dl = GRPC_SLICE_LENGTH(details);
    if (dl >= sizeof out->details)
        dl = sizeof out->details - 1;
    memcpy(out->details, GRPC_SLICE_START_PTR(details), dl);
    out->details[dl] = '\0';
    grpc_slice_unref(details);
    out->resp = NULL;
    out->resp_len = 0;
    if (resp != NULL) {
        grpc_byte_buffer_reader r;
        assert_true(grpc_byte_buffer_reader_init(&r, resp));
        grpc_slice all = grpc_byte_buffer_reader_readall(&r);
        grpc_byte_buffer_reader_destroy(&r);
        out->resp_len = GRPC_SLICE_LENGTH(all);
        out->resp = malloc(out->resp_len + 1);
        memcpy(out->resp, GRPC_SLICE_START_PTR(all), out->resp_len);
        out->resp[out->resp_len] = '\0';
        grpc_slice_unref(all);
        grpc_byte_buffer_destroy(resp);
    }
    grpc_metadata_array_destroy(&initial);
    grpc_metadata_array_destroy(&trailing);
    grpc_call_unref(call);
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_pluck(cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN)
        ;
    grpc_completion_queue_destroy(cq);
}

static inline void unary(grpc_channel *ch, const char *method, const char *msg, size_t len,
                         client_result *out)
{
    const char *msgs[1] = {msg};
    size_t lens[1] = {len};
    client_req req = {.method = method, .msgs = msgs, .lens = lens, .nmsgs = 1};
    client_run(ch, &req, out);
}

/* A pw_grpc handler answering the request message with itself (server side
 * of the tests' echo method). */
static inline void grpc_test_echo_handler(pw_grpc_call *call, void *ctx)
{
    (void)ctx;
    uint8_t *buf;
    size_t len;
    if (pw_grpc_call_recv(call, &buf, &len) != 1) {
        pw_grpc_call_finish(call, NULL, 0, GRPC_STATUS_INVALID_ARGUMENT, "no request");
        return;
    }
    pw_grpc_call_finish(call, buf, len, GRPC_STATUS_OK, NULL);
    free(buf);
}

#endif
