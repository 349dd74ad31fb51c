/* mx_history_api: the two protocols of the history queries — REST
 * (GET /v1/devices/{device_id}/readings|alerts, /v1/zones/{zone}/readings|
 * alerts; the path segment percent-decoded by libmicrohttpd) and gRPC
 * (iot.v1.MetricsService DeviceReadings, ZoneReadings, DeviceAlerts,
 * ZoneAlerts) — their argument validation into one mx_hist_query, and the
 * run of mx_history_run inside the service's computation gate and store
 * deadline (bucketed answers through the answer cache), counted in the
 * service's request, latency and cache metrics like the views. */
#ifndef MX_HISTORY_API_H
#define MX_HISTORY_API_H

#include <microhttpd.h>

#include "mx_history.h"
#include "mx_service.h"
#include "pw_grpc.h"

/* The REST route of url: 1 with its kind and the key segment (borrowed
 * pointer into url, keylen bytes), or 0 when url is not a history path. */
int mx_history_route(const char *url, mx_hist_kind *kind, const char **key, size_t *keylen);

/* Records one REST query argument of kind into a (value NULL: bare name);
 * seen tracks repeats. Unknown, repeated or valueless names and a limit
 * that is not a decimal integer are errors in e. */
void mx_history_arg(mx_hist_kind kind, mx_hist_args *a, unsigned *seen, const char *name,
                    const char *value, mx_param_error *e);

/* Serves url when it is a history path: 1 with the queued answer in
 * *result, else 0 (nothing sent). */
int mx_history_rest(mx_service *s, struct MHD_Connection *c, const char *url,
                    enum MHD_Result *result);

/* Registers the four history methods; s->history_methods is their context
 * (s must outlive the server). 0 or -1. */
int mx_history_grpc_register(mx_service *s, pw_grpc_server *server);

#endif
