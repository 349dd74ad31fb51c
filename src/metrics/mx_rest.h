/* mx_rest: the REST side of the metrics service on libmicrohttpd — the JSON
 * shim under /v1/metrics/..., the dashboard (GET / and its assets),
 * /openapi.json, and the operational endpoints /healthz, /readyz, /metrics. */
#ifndef MX_REST_H
#define MX_REST_H

#include <microhttpd.h>

#include "mx_service.h"

/* The MHD access handler; cls is the mx_service. */
enum MHD_Result mx_rest_handle(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *upload_data,
                               size_t *upload_data_size, void **con_cls);

/* Content type for an asset name by extension. */
const char *mx_rest_content_type(const char *name);

#endif
