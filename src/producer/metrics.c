/* metrics: the producer's request-level Prometheus families (Kafka-level ones
 * live in kafka_out.c). */
#include "producer.h"

static const double pw_request_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                           0.25,  0.5,    1.0,   2.5,  5.0,   10.0};

void pw_producer_metrics_init(pw_producer *p)
{
    p->http_requests = pw_prom_counter(p->prom, "pw_http_requests_total",
                                       "HTTP requests answered, by route, method and status",
                                       "route,method,status");
    p->grpc_requests =
        pw_prom_counter(p->prom, "pw_grpc_requests_total",
                        "gRPC calls finished, by method and status code", "method,code");
    p->request_seconds = pw_prom_histogram(
        p->prom, "pw_request_duration_seconds", "Ingest request receipt to answer", "route",
        pw_request_bounds, sizeof(pw_request_bounds) / sizeof(pw_request_bounds[0]));
}
