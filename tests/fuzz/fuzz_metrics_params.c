/* libFuzzer target: the parameter parsing of every metrics view, as both
 * protocols do it. First byte: the view (low bits) and the protocol (bit
 * 7). REST: the rest is a decoded query string, split at '&' and the first
 * '=' of each argument as libmicrohttpd hands them over
 * (mx_params_set_text). gRPC: the rest is the view's request message
 * (protobuf-c unpack, then mx_params_from_message). It checks that accepted
 * parameters lie in their ranges with a valid zone, and that a refusal has a
 * bounded, valid UTF-8 message and at most MX_PARAM_DETAILS_MAX details that
 * serialize as JSON. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mx_params.h"
#include "mx_views.h"

static void fz_check_accepted(const mx_view *v, const mx_params *p)
{
    for (size_t i = 0; i < v->nparams; i++) {
        const mx_param_spec *sp = &v->params[i];
        if (sp->kind == MX_PARAM_UINT) {
            uint32_t x = *(const uint32_t *)((const char *)p + sp->offset);
            if (x < sp->min || x > sp->max) {
                abort();
            }
        }
    }
    size_t len = strnlen(p->zone, sizeof(p->zone));
    size_t chars = 0;
    int ctrl = 0;
    if (len >= sizeof(p->zone) || pw_utf8_scan(p->zone, len, 0, &chars, &ctrl) != 0 || ctrl ||
        chars > MX_ZONE_MAX) {
        abort();
    }
}

static void fz_check_refused(const mx_param_error *e)
{
    size_t len = strnlen(e->message, sizeof(e->message));
    size_t chars = 0;
    int ctrl = 0;
    if (len == 0 || len >= sizeof(e->message) || pw_utf8_scan(e->message, len, 1, &chars, &ctrl)) {
        abort();
    }
    if (e->details == NULL || json_array_size(e->details) == 0 ||
        json_array_size(e->details) > MX_PARAM_DETAILS_MAX ||
        json_array_size(e->details) > (size_t)e->count) {
        abort();
    }
    char *text = json_dumps(e->details, JSON_COMPACT);
    if (text == NULL) {
        abort();
    }
    free(text);
}

/* Splits the query string q (NUL-terminated, modified) into arguments. */
static int fz_rest(const mx_view *v, char *q, mx_params *p, mx_param_error *e)
{
    unsigned seen = 0;
    int rc = 0;
    char *save = NULL;
    for (char *arg = strtok_r(q, "&", &save); arg != NULL; arg = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(arg, '=');
        if (eq != NULL) {
            *eq = '\0';
        }
        if (mx_params_set_text(v->params, v->nparams, p, &seen, arg, eq ? eq + 1 : NULL, e) != 0) {
            rc = -1;
        }
    }
    return rc;
}

static int fz_grpc(const mx_view *v, const uint8_t *data, size_t size, mx_params *p,
                   mx_param_error *e)
{
    ProtobufCMessage *req = protobuf_c_message_unpack(v->request, NULL, size, data);
    if (req == NULL) {
        return 1; /* malformed: refused before any parameter is read */
    }
    int rc = mx_params_from_message(v->params, v->nparams, req, p, e);
    protobuf_c_message_free_unpacked(req, NULL);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    const mx_view *v = &mx_views[(data[0] & 0x7f) % mx_view_count];
    int grpc = data[0] & 0x80;
    mx_params p;
    mx_param_error e;
    mx_param_error_init(&e);
    mx_params_defaults(v->params, v->nparams, &p);
    int rc;
    if (grpc) {
        rc = fz_grpc(v, data + 1, size - 1, &p, &e);
    } else {
        char *q = malloc(size);
        if (q == NULL) {
            return 0;
        }
        memcpy(q, data + 1, size - 1);
        q[size - 1] = '\0';
        rc = fz_rest(v, q, &p, &e);
        free(q);
    }
    if (rc == 0) {
        if (e.count != 0) {
            abort();
        }
        fz_check_accepted(v, &p);
    } else if (rc == -1) {
        if (e.count == 0) {
            abort();
        }
        fz_check_refused(&e);
    }
    mx_param_error_free(&e);
    return 0;
}
