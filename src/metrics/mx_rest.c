/* mx_rest: REST routing, query-argument validation and asset serving. */
#include "mx_rest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mx_assets.h"
#include "mx_export.h"
#include "mx_history_api.h"
#include "mx_json.h"
#include "pw_http.h"
#include "pw_log.h"
#include "pw_time.h"

#define MX_WWW_MAX_BYTES (4u * 1024 * 1024)

typedef struct {
    const mx_view *view;
    mx_params *params;
    unsigned seen;
    mx_param_error *err;
} mx_query;

static enum MHD_Result collect_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    (void)kind;
    mx_query *q = cls;
    mx_params_set_text(q->view->params, q->view->nparams, q->params, &q->seen, key, value, q->err);
    return MHD_YES;
}

static enum MHD_Result serve_view(mx_service *s, struct MHD_Connection *c, const mx_view *v)
{
    mx_params p;
    mx_param_error perr;
    mx_param_error_init(&perr);
    mx_params_defaults(v->params, v->nparams, &p);
    mx_query q = {v, &p, 0, &perr};
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, collect_arg, &q);
    if (perr.count > 0) {
        char msg[600];
        snprintf(msg, sizeof(msg), "invalid parameter: %s", perr.message);
        json_t *details = json_incref(perr.details);
        mx_param_error_free(&perr);
        mx_service_count(s, v, "rest", MX_OUTCOME_INVALID);
        return pw_http_send_error(c, MHD_HTTP_BAD_REQUEST, "invalid_parameter", msg, details);
    }
    mx_param_error_free(&perr);
    p.now_ms = pw_now_ms();

    uint8_t *buf = NULL;
    size_t len = 0;
    char err[256];
    int rc = mx_service_run(s, v, "rest", &p, &buf, &len, err, sizeof(err));
    if (rc != 0) {
        /* busy: a slot frees within one computation; the store: give it time */
        return pw_http_send_unavailable(c, rc == MX_RUN_BUSY ? 1 : 5, err);
    }
    /* the same packed answer gRPC sends, mapped to JSON */
    ProtobufCMessage *resp = protobuf_c_message_unpack(v->response, NULL, len, buf);
    free(buf);
    json_t *body = resp ? mx_json_from_message(resp) : NULL;
    protobuf_c_message_free_unpacked(resp, NULL);
    if (body == NULL) {
        return pw_http_send_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", "out of memory",
                                  NULL);
    }
    return pw_http_send_json(c, MHD_HTTP_OK, body);
}

const char *mx_rest_content_type(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (dot == NULL) {
        return "application/octet-stream";
    }
    if (strcmp(dot, ".html") == 0) {
        return "text/html; charset=utf-8";
    }
    if (strcmp(dot, ".js") == 0) {
        return "text/javascript; charset=utf-8";
    }
    if (strcmp(dot, ".css") == 0) {
        return "text/css; charset=utf-8";
    }
    if (strcmp(dot, ".json") == 0) {
        return "application/json";
    }
    if (strcmp(dot, ".svg") == 0) {
        return "image/svg+xml";
    }
    return "application/octet-stream";
}

/* Contents of dir/name, or NULL (development override of the embedded copy). */
static char *read_www_file(const char *dir, const char *name, size_t *len)
{
    char path[1024];
    if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path)) {
        return NULL;
    }
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    char *buf = malloc(MX_WWW_MAX_BYTES);
    size_t n = buf ? fread(buf, 1, MX_WWW_MAX_BYTES, f) : 0;
    fclose(f);
    if (buf != NULL) {
        *len = n;
    }
    return buf;
}

static enum MHD_Result serve_asset(mx_service *s, struct MHD_Connection *c, const mx_asset *a)
{
    struct MHD_Response *r = NULL;
    size_t len = 0;
    char *file = s->www_dir ? read_www_file(s->www_dir, a->name, &len) : NULL;
    if (file != NULL) {
        r = MHD_create_response_from_buffer(len, file, MHD_RESPMEM_MUST_FREE);
    } else {
        r = MHD_create_response_from_buffer(a->len, (void *)a->data, MHD_RESPMEM_PERSISTENT);
    }
    if (r == NULL) {
        free(file);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, mx_rest_content_type(a->name));
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    enum MHD_Result rc = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return rc;
}

enum MHD_Result mx_rest_handle(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *upload_data,
                               size_t *upload_data_size, void **con_cls)
{
    (void)version;
    (void)upload_data;
    mx_service *s = cls;
    if (*con_cls == NULL) {
        *con_cls = (void *)1; /* first call: headers only */
        if (strcmp(method, MHD_HTTP_METHOD_GET) == 0 || strcmp(method, MHD_HTTP_METHOD_HEAD) == 0) {
            /* fall through and answer now */
        } else {
            return MHD_YES; /* let MHD read (and discard) any body first */
        }
    }
    if (*upload_data_size != 0) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
        return pw_http_send_method_not_allowed(c, "GET, HEAD");
    }
    enum MHD_Result result;
    if (pw_http_serve_ops(c, url, method, s->prom, mx_store_ping, s->store, &result)) {
        return result;
    }
    if (mx_export_serve(s->exports, c, url, &result)) {
        return result;
    }
    if (mx_history_rest(s, c, url, &result)) {
        return result;
    }
    const mx_view *v = mx_view_by_path(url);
    if (v != NULL) {
        return serve_view(s, c, v);
    }
    const mx_asset *a = NULL;
    if (strcmp(url, "/") == 0) {
        a = mx_asset_find("index.html");
    } else if (url[0] == '/' && strchr(url + 1, '/') == NULL) {
        a = mx_asset_find(url + 1);
    }
    if (a != NULL) {
        return serve_asset(s, c, a);
    }
    return pw_http_send_error(c, MHD_HTTP_NOT_FOUND, "not_found", "no such resource", NULL);
}
