/* pw_grpc_health: the grpc.health.v1.Health service of every pw_grpc server.
 * The server's health ("" and every registered service alike) is SERVING
 * from start until pw_grpc_server_set_serving(s, 0) or stop; other names are
 * NOT_FOUND (Check) or SERVICE_UNKNOWN (Watch). Watch sends the status, then
 * each change, until the client leaves, the server stops or the call reaches
 * PW_GRPC_MAX_CALL_MS; it holds a thread but no worker while it waits, so at
 * most a quarter of PW_GRPC_MAX_CALLS watches are open at once (more get
 * RESOURCE_EXHAUSTED). */
#include <grpc/support/time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpc/health/v1/health.pb-c.h"
#include "pw_grpc_internal.h"

#define PW_GRPC_HEALTH_POLL_MS 200

typedef Grpc__Health__V1__HealthCheckRequest pw_grpc_health_req;

static int pw_grpc_health_known(const pw_grpc_server *s, const char *name)
{
    if (name == NULL || name[0] == '\0') {
        return 1;
    }
    for (size_t i = 0; i < s->nservices; i++) {
        if (strcmp(s->services[i], name) == 0) {
            return 1;
        }
    }
    return 0;
}

/* The status for service name, and the version it belongs to. */
static int pw_grpc_health_status(pw_grpc_server *s, const char *name, unsigned *version)
{
    pthread_mutex_lock(&s->mu);
    int serving = s->serving;
    if (version != NULL) {
        *version = s->health_version;
    }
    pthread_mutex_unlock(&s->mu);
    if (!pw_grpc_health_known(s, name)) {
        return GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN;
    }
    return serving ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
                   : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
}

/* The request, or NULL with the call finished with a clear status. */
static pw_grpc_health_req *pw_grpc_health_read(pw_grpc_call *call)
{
    uint8_t *buf;
    size_t len;
    int rc = pw_grpc_call_recv(call, &buf, &len);
    if (rc != 1) {
        pw_grpc_call_finish(call, NULL, 0, GRPC_STATUS_INVALID_ARGUMENT,
                            "expected one HealthCheckRequest");
        return NULL;
    }
    pw_grpc_health_req *req = grpc__health__v1__health_check_request__unpack(NULL, len, buf);
    free(buf);
    if (req == NULL) {
        pw_grpc_call_finish(call, NULL, 0, GRPC_STATUS_INVALID_ARGUMENT,
                            "HealthCheckRequest does not decode");
    }
    return req;
}

static size_t pw_grpc_health_pack(int status, uint8_t *out)
{
    Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
    resp.status = (Grpc__Health__V1__HealthCheckResponse__ServingStatus)status;
    return grpc__health__v1__health_check_response__pack(&resp, out);
}

void pw_grpc_health_check(pw_grpc_call *call, void *ctx)
{
    pw_grpc_server *s = ctx;
    pw_grpc_health_req *req = pw_grpc_health_read(call);
    if (req == NULL) {
        return;
    }
    int status = pw_grpc_health_status(s, req->service, NULL);
    if (status == GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN) {
        char msg[256];
        snprintf(msg, sizeof msg, "unknown service \"%.200s\"", req->service);
        pw_grpc_call_finish(call, NULL, 0, GRPC_STATUS_NOT_FOUND, msg);
    } else {
        uint8_t out[8];
        pw_grpc_call_finish(call, out, pw_grpc_health_pack(status, out), GRPC_STATUS_OK, NULL);
    }
    grpc__health__v1__health_check_request__free_unpacked(req, NULL);
}

/* Starts watching for the client leaving (RECV_CLOSE_ON_SERVER). 0 or -1. */
static int pw_grpc_health_watch_close(pw_grpc_call *c)
{
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    op.data.recv_close_on_server.cancelled = &c->close_cancelled;
    if (grpc_call_start_batch(c->call, &op, 1, &c->close_tag, NULL) != GRPC_CALL_OK) {
        return -1;
    }
    c->close_state = PW_GRPC_CLOSE_PENDING;
    return 0;
}

/* Waits up to PW_GRPC_HEALTH_POLL_MS for a health change; 1 if the client left. */
static int pw_grpc_health_wait(pw_grpc_call *c, unsigned version)
{
    pw_grpc_server *s = c->srv;
    struct timespec until = pw_grpc_abs_after(PW_GRPC_HEALTH_POLL_MS);
    pthread_mutex_lock(&s->mu);
    if (s->health_version == version) {
        (void)pthread_cond_timedwait(&s->health_cond, &s->mu, &until);
    }
    pthread_mutex_unlock(&s->mu);
    grpc_event ev =
        grpc_completion_queue_pluck(c->cq, &c->close_tag, gpr_time_0(GPR_CLOCK_MONOTONIC), NULL);
    if (ev.type == GRPC_OP_COMPLETE) {
        c->close_state = PW_GRPC_CLOSE_DONE;
        c->finished = 1;
        return 1;
    }
    return 0;
}

static void pw_grpc_health_watch_run(pw_grpc_call *call, pw_grpc_server *s);

void pw_grpc_health_watch(pw_grpc_call *call, void *ctx)
{
    pw_grpc_server *s = ctx;
    long cap = s->lim.max_calls / 4 > 0 ? s->lim.max_calls / 4 : 1;
    if (atomic_fetch_add(&s->watches, 1) >= cap) {
        char msg[128];
        snprintf(msg, sizeof msg, "too many health watches: %ld open; use Check", cap);
        pw_grpc_call_finish(call, NULL, 0, GRPC_STATUS_RESOURCE_EXHAUSTED, msg);
    } else {
        pw_grpc_health_watch_run(call, s);
    }
    atomic_fetch_sub(&s->watches, 1);
}

static void pw_grpc_health_watch_run(pw_grpc_call *call, pw_grpc_server *s)
{
    pw_grpc_health_req *req = pw_grpc_health_read(call);
    if (req == NULL) {
        return;
    }
    uint8_t out[8];
    unsigned version;
    int status = pw_grpc_health_status(s, req->service, &version);
    int ok = pw_grpc_call_send(call, out, pw_grpc_health_pack(status, out)) == 0 &&
             pw_grpc_health_watch_close(call) == 0;
    pw_grpc_worker_release(call);
    while (ok && !atomic_load(&s->stopping) && pw_grpc_lifetime_left_ms(call) > 0) {
        if (pw_grpc_health_wait(call, version)) {
            break;
        }
        int now = pw_grpc_health_status(s, req->service, &version);
        if (now != status) {
            status = now;
            ok = pw_grpc_call_send(call, out, pw_grpc_health_pack(status, out)) == 0;
            pw_grpc_worker_release(call);
        }
    }
    if (ok && atomic_load(&s->stopping) &&
        status != GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING &&
        pw_grpc_health_known(s, req->service)) {
        status = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
        (void)pw_grpc_call_send(call, out, pw_grpc_health_pack(status, out));
    }
    if (pw_grpc_lifetime_left_ms(call) <= 0) {
        pw_grpc_call_finish(call, NULL, 0, GRPC_STATUS_DEADLINE_EXCEEDED,
                            "watch reached the server's call limit (PW_GRPC_MAX_CALL_MS)");
    } else {
        pw_grpc_call_finish(call, NULL, 0, GRPC_STATUS_OK, NULL);
    }
    grpc__health__v1__health_check_request__free_unpacked(req, NULL);
}
