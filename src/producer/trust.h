/* trust: proves that an ingest request came through the gateway. The gateway
 * (the rendered nginx locally, Kong in Kubernetes) adds the shared secret
 * PW_GATEWAY_SECRET_FILE as the header X-Gateway-Token (gRPC metadata
 * x-gateway-token) next to X-Consumer-Username. A request without it, or with
 * another value, is refused before its body or messages are read: REST 401
 * (unauthenticated), gRPC UNAUTHENTICATED, counted in
 * pw_untrusted_requests_total{api}. Only a trusted request's consumer name is
 * used. /healthz, /readyz and /metrics are not ingest routes and stay open. */
#ifndef PW_PRODUCER_TRUST_H
#define PW_PRODUCER_TRUST_H

#include <microhttpd.h>

#include "producer.h"

#define PW_TRUST_HEADER "X-Gateway-Token"
#define PW_TRUST_METADATA "x-gateway-token"
/* Fits the REST error message buffer (160 bytes). */
#define PW_TRUST_MESSAGE                                                                           \
    "request did not come through the gateway (X-Gateway-Token missing or wrong)"

/* 1 when token equals secret. Both may be NULL (then 0). The comparison
 * takes the same time whatever the token holds: SHA-256 digests of both are
 * compared with CRYPTO_memcmp. */
int pw_trust_token_ok(const char *secret, const char *token);

/* REST: 1 when the request on c must be refused (it is then counted and
 * logged; the caller answers 401 with PW_TRUST_MESSAGE), 0 when it came
 * through the gateway. */
int pw_trust_rest_refused(pw_producer *p, struct MHD_Connection *c, const char *route);

/* gRPC: 1 when the call was refused: it has been finished with
 * UNAUTHENTICATED and counted, and must not be touched again. 0 when it came
 * through the gateway. method is the label of pw_grpc_requests_total. */
int pw_trust_grpc_refused(pw_producer *p, pw_grpc_call *call, const char *method);

#endif
