/* mx_grpc: the MetricsService gRPC methods (/iot.v1.MetricsService/<Rpc>) on
 * a pw_grpc server: decode the request, validate, run the view, answer. */
#ifndef MX_GRPC_H
#define MX_GRPC_H

#include "mx_service.h"
#include "pw_grpc.h"

/* Registers one method per view. 0 or -1. */
int mx_grpc_register(mx_service *s, pw_grpc_server *server);

#endif
