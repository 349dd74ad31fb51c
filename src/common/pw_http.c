/* pw_http: owns the services' common HTTP behaviour on libmicrohttpd — JSON
 * and error responses in the platform format, 405/503 helpers, bounded
 * request-body accumulation, Content-Type checks and the operational
 * endpoints /healthz, /readyz and /metrics. */
#include "pw_http.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static enum MHD_Result pw_http_queue(struct MHD_Connection *c, unsigned status,
                                     struct MHD_Response *r)
{
    if (r == NULL) {
        return MHD_NO;
    }
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static struct MHD_Response *pw_http_json_response(json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (text == NULL) {
        text = strdup("{}");
    }
    if (text == NULL) {
        return NULL;
    }
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (r == NULL) {
        free(text);
        return NULL;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    return r;
}

enum MHD_Result pw_http_send_json(struct MHD_Connection *c, unsigned status, json_t *body)
{
    return pw_http_queue(c, status, pw_http_json_response(body));
}

static json_t *pw_http_error_body(const char *code, const char *message, json_t *details)
{
    if (details == NULL) {
        details = json_array();
    } else if (!json_is_array(details)) {
        json_t *arr = json_array();
        json_array_append_new(arr, details);
        details = arr;
    }
    json_t *err = json_object();
    json_object_set_new(err, "code", json_string(code ? code : "error"));
    json_t *m = json_string(message ? message : "");
    json_object_set_new(err, "message", m ? m : json_string("invalid message text"));
    json_object_set_new(err, "details", details);
    json_t *body = json_object();
    json_object_set_new(body, "error", err);
    return body;
}

enum MHD_Result pw_http_send_error(struct MHD_Connection *c, unsigned status, const char *code,
                                   const char *message, json_t *details)
{
    return pw_http_send_json(c, status, pw_http_error_body(code, message, details));
}

enum MHD_Result pw_http_send_method_not_allowed(struct MHD_Connection *c, const char *allow)
{
    struct MHD_Response *r =
        pw_http_json_response(pw_http_error_body("method_not_allowed", "method not allowed", NULL));
    if (r != NULL) {
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow ? allow : "");
    }
    return pw_http_queue(c, MHD_HTTP_METHOD_NOT_ALLOWED, r);
}

enum MHD_Result pw_http_send_unavailable(struct MHD_Connection *c, unsigned retry_after_s,
                                         const char *message)
{
    struct MHD_Response *r = pw_http_json_response(
        pw_http_error_body("unavailable", message ? message : "service unavailable", NULL));
    if (r != NULL) {
        char secs[24];
        snprintf(secs, sizeof secs, "%u", retry_after_s);
        MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, secs);
    }
    return pw_http_queue(c, MHD_HTTP_SERVICE_UNAVAILABLE, r);
}

enum MHD_Result pw_http_send_text(struct MHD_Connection *c, unsigned status,
                                  const char *content_type, const char *text, size_t len)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)text, MHD_RESPMEM_MUST_COPY);
    if (r != NULL && content_type != NULL) {
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    }
    return pw_http_queue(c, status, r);
}

/* ---- request body -------------------------------------------------------- */

void pw_http_body_init(pw_http_body *b, size_t limit)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->limit = limit;
    b->too_large = 0;
}

void pw_http_body_append(pw_http_body *b, const char *data, size_t len)
{
    if (b->too_large || len == 0) {
        return;
    }
    if (len > b->limit - b->len) {
        b->too_large = 1;
        return;
    }
    if (b->len + len + 1 > b->cap) {
        size_t ncap = b->cap ? b->cap : 4096;
        while (ncap < b->len + len + 1) {
            ncap *= 2;
        }
        if (b->limit < SIZE_MAX && ncap > b->limit + 1) {
            ncap = b->limit + 1;
        }
        char *nd = realloc(b->data, ncap);
        if (nd == NULL) {
            b->too_large = 1; /* cannot hold it: refuse like an oversized body */
            return;
        }
        b->data = nd;
        b->cap = ncap;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
}

void pw_http_body_free(pw_http_body *b)
{
    free(b->data);
    pw_http_body_init(b, b->limit);
}

/* ---- operational endpoints ----------------------------------------------- */

static enum MHD_Result pw_http_serve_ready(struct MHD_Connection *c, pw_ready_fn ready, void *ctx)
{
    char why[256] = "";
    if (ready == NULL || ready(ctx, why, sizeof why)) {
        json_t *body = json_pack("{s:s}", "status", "ready");
        return pw_http_send_json(c, MHD_HTTP_OK, body);
    }
    json_t *body = json_object();
    json_object_set_new(body, "status", json_string("not ready"));
    json_t *reason = json_string(why[0] ? why : "not ready");
    json_object_set_new(body, "reason", reason ? reason : json_string("not ready"));
    return pw_http_send_json(c, MHD_HTTP_SERVICE_UNAVAILABLE, body);
}

static enum MHD_Result pw_http_serve_metrics(struct MHD_Connection *c, pw_prom *prom)
{
    char *text = prom ? pw_prom_render(prom) : strdup("");
    if (text == NULL) {
        return pw_http_send_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal",
                                  "cannot render metrics", NULL);
    }
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (r == NULL) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; version=0.0.4");
    return pw_http_queue(c, MHD_HTTP_OK, r);
}

int pw_http_serve_ops(struct MHD_Connection *c, const char *url, const char *method, pw_prom *prom,
                      pw_ready_fn ready, void *ready_ctx, enum MHD_Result *result)
{
    int which;
    if (strcmp(url, "/healthz") == 0) {
        which = 0;
    } else if (strcmp(url, "/readyz") == 0) {
        which = 1;
    } else if (strcmp(url, "/metrics") == 0) {
        which = 2;
    } else {
        return 0;
    }
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
        *result = pw_http_send_method_not_allowed(c, "GET, HEAD");
        return 1;
    }
    if (which == 0) {
        *result = pw_http_send_json(c, MHD_HTTP_OK, json_pack("{s:s}", "status", "ok"));
    } else if (which == 1) {
        *result = pw_http_serve_ready(c, ready, ready_ctx);
    } else {
        *result = pw_http_serve_metrics(c, prom);
    }
    return 1;
}

/* application/json or application/<anything>+json; parameters
 * (charset=utf-8, …) and surrounding whitespace are allowed. */
static int pw_http_media_is_json(const char *ct)
{
    while (*ct == ' ' || *ct == '\t') {
        ct++;
    }
    size_t n = strcspn(ct, ";");
    while (n > 0 && (ct[n - 1] == ' ' || ct[n - 1] == '\t')) {
        n--;
    }
    static const char app[] = "application/";
    size_t alen = sizeof app - 1;
    if (n <= alen || strncasecmp(ct, app, alen) != 0) {
        return 0;
    }
    const char *sub = ct + alen;
    size_t slen = n - alen;
    if (memchr(sub, '/', slen) || memchr(sub, ' ', slen)) {
        return 0;
    }
    if (slen == 4 && strncasecmp(sub, "json", 4) == 0) {
        return 1;
    }
    return slen > 5 && strncasecmp(sub + slen - 5, "+json", 5) == 0;
}

int pw_http_is_json(struct MHD_Connection *c)
{
    const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    return ct != NULL && pw_http_media_is_json(ct);
}
