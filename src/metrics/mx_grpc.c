/* mx_grpc: gRPC method handlers of the MetricsService. */
#include "mx_grpc.h"

#include <stdio.h>
#include <stdlib.h>

#include "mx_history_api.h"
#include "pw_time.h"

static void finish_invalid(pw_grpc_call *call, mx_method *m, const char *msg)
{
    mx_service_count(m->svc, m->view, "grpc", MX_OUTCOME_INVALID);
    pw_grpc_call_finish(call, NULL, 0, GRPC_STATUS_INVALID_ARGUMENT, msg);
}

static void handle_view(pw_grpc_call *call, void *ctx)
{
    mx_method *m = ctx;
    const mx_view *v = m->view;
    uint8_t *buf = NULL;
    size_t len = 0;
    int got = pw_grpc_call_recv(call, &buf, &len);
    if (got != 1) {
        pw_grpc_call_finish(call, NULL, 0,
                            got == 0 ? GRPC_STATUS_INVALID_ARGUMENT : GRPC_STATUS_CANCELLED,
                            got == 0 ? "missing request message" : "call cancelled");
        return;
    }
    ProtobufCMessage *req = protobuf_c_message_unpack(v->request, NULL, len, buf);
    free(buf);
    if (req == NULL) {
        finish_invalid(call, m, "malformed request message");
        return;
    }
    mx_params p;
    mx_param_error perr;
    mx_param_error_init(&perr);
    mx_params_defaults(v->params, v->nparams, &p);
    p.now_ms = pw_now_ms();
    int rc = mx_params_from_message(v->params, v->nparams, req, &p, &perr);
    protobuf_c_message_free_unpacked(req, NULL);
    if (rc != 0) {
        char msg[600];
        snprintf(msg, sizeof(msg), "invalid parameter: %s", perr.message);
        mx_param_error_free(&perr);
        finish_invalid(call, m, msg);
        return;
    }
    mx_param_error_free(&perr);

    uint8_t *out = NULL;
    size_t n = 0;
    char err[256];
    rc = mx_service_run(m->svc, v, "grpc", &p, &out, &n, err, sizeof(err));
    if (rc != 0) {
        pw_grpc_call_finish(
            call, NULL, 0,
            rc == MX_RUN_BUSY ? GRPC_STATUS_RESOURCE_EXHAUSTED : GRPC_STATUS_UNAVAILABLE, err);
        return;
    }
    pw_grpc_call_finish(call, out, n, GRPC_STATUS_OK, NULL);
    free(out);
}

int mx_grpc_register(mx_service *s, pw_grpc_server *server)
{
    for (size_t i = 0; i < mx_view_count; i++) {
        if (pw_grpc_server_add_method(server, mx_views[i].rpc_path, handle_view, &s->methods[i]) !=
            0) {
            return -1;
        }
    }
    return mx_history_grpc_register(s, server);
}
