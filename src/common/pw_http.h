/* pw_http: libmicrohttpd helpers shared by the services: JSON and error
 * responses in the platform's format, bounded request-body accumulation, and
 * the operational endpoints /healthz, /readyz and /metrics. */
#ifndef PW_HTTP_H
#define PW_HTTP_H

#include <jansson.h>
#include <microhttpd.h>
#include <stddef.h>

#include "pw_prom.h"

/* Sends body (ownership taken) as application/json with status. */
enum MHD_Result pw_http_send_json(struct MHD_Connection *c, unsigned status, json_t *body);

/* {"error":{"code":code,"message":message,"details":details}}; details (taken) may be NULL. */
enum MHD_Result pw_http_send_error(struct MHD_Connection *c, unsigned status, const char *code,
                                   const char *message, json_t *details);

/* 405 with an Allow header. */
enum MHD_Result pw_http_send_method_not_allowed(struct MHD_Connection *c, const char *allow);

/* 503 with Retry-After: seconds. */
enum MHD_Result pw_http_send_unavailable(struct MHD_Connection *c, unsigned retry_after_s,
                                         const char *message);

enum MHD_Result pw_http_send_text(struct MHD_Connection *c, unsigned status,
                                  const char *content_type, const char *text, size_t len);

/* Request body collected across MHD upload callbacks, capped at limit bytes. */
typedef struct {
    char *data;
    size_t len;
    size_t cap;
    size_t limit;
    int too_large; /* set once more than limit bytes arrived; data then stops growing */
} pw_http_body;

void pw_http_body_init(pw_http_body *b, size_t limit);
void pw_http_body_append(pw_http_body *b, const char *data, size_t len);
void pw_http_body_free(pw_http_body *b);

/* Readiness probe: returns 1 when ready, else 0 with a reason in why. */
typedef int (*pw_ready_fn)(void *ctx, char *why, size_t whylen);

/* Serves GET /healthz, /readyz and /metrics. Returns 1 and sets *result when
 * url is one of them, else 0 (the caller routes it). */
int pw_http_serve_ops(struct MHD_Connection *c, const char *url, const char *method, pw_prom *prom,
                      pw_ready_fn ready, void *ready_ctx, enum MHD_Result *result);

/* 1 if the request's Content-Type is application/json (parameters allowed). */
int pw_http_is_json(struct MHD_Connection *c);

#endif
