/* producer: the service's one context, owned by main() and shared read-mostly
 * by the REST, gRPC and Kafka parts. No other mutable global state exists. */
#ifndef PW_PRODUCER_H
#define PW_PRODUCER_H

#include <microhttpd.h>
#include <stdatomic.h>

#include "config.h"
#include "kafka_out.h"
#include "pw_grpc.h"
#include "pw_prom.h"

typedef struct pw_producer {
    pw_producer_config cfg;
    pw_prom *prom;
    pw_prom_family *http_requests;   /* pw_http_requests_total{route,method,status} */
    pw_prom_family *grpc_requests;   /* pw_grpc_requests_total{method,code} */
    pw_prom_family *request_seconds; /* pw_request_duration_seconds{route} */
    pw_kafka_out kafka;
    struct MHD_Daemon *httpd;
    pw_grpc_server *grpc;
    atomic_int stopping; /* set on SIGTERM: new requests get 503 */
    atomic_int inflight; /* requests whose records are being delivered */
} pw_producer;

/* Registers the request metric families on p->prom. */
void pw_producer_metrics_init(pw_producer *p);

/* REST (rest.c). */
int pw_rest_start(pw_producer *p, char *err, size_t errlen);
void pw_rest_quiesce(pw_producer *p); /* stop accepting connections */
void pw_rest_stop(pw_producer *p);

/* gRPC (grpc_ingest.c). */
int pw_grpc_ingest_start(pw_producer *p, char *err, size_t errlen);
void pw_grpc_ingest_stop(pw_producer *p, int grace_ms);

#endif
