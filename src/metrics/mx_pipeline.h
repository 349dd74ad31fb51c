/* mx_pipeline: the pipeline view (GET /v1/metrics/pipeline, gRPC Pipeline) —
 * per ingest partition what Kafka accepted (end offset), what the consumers
 * counted (their pipeline marks in the store, pw_pipeline.h), what the group
 * committed, lag, difference and a verdict; dead letters by reason; the
 * end-to-end latency over the last window_minutes. It reads the store (one
 * equality query) within the store deadline, then Kafka within what is left
 * of it (at most kafka_timeout_ms); when Kafka cannot answer, the view still
 * answers with what the store knows and says so in its verdict. Not cached:
 * every answer is computed when asked, under one of the service's
 * computation slots. */
#ifndef MX_PIPELINE_H
#define MX_PIPELINE_H

#include <microhttpd.h>
#include <stdint.h>

#include "iot/v1/metrics.pb-c.h"
#include "mx_kafka.h"
#include "mx_service.h"
#include "pw_grpc.h"

#define MX_PIPELINE_PATH "/v1/metrics/pipeline"
#define MX_PIPELINE_RPC "/iot.v1.MetricsService/Pipeline"

#define MX_VERDICT_IN_SYNC "in sync"
#define MX_VERDICT_CATCHING_UP "catching up"
#define MX_VERDICT_STALLED "stalled"
#define MX_VERDICT_UNKNOWN "unknown" /* Kafka did not answer */

typedef struct {
    const char *topics[2]; /* the ingest topics (copied) */
    long stall_seconds;    /* lag without anything counted this long: stalled */
    long kafka_timeout_ms; /* longest wait for Kafka's answers */
} mx_pipeline_options;

typedef struct mx_pipeline mx_pipeline;

/* svc stays owned by the caller and must outlive the view; the view takes
 * kafka (NULL: none configured, why says why) and frees it. NULL on ENOMEM
 * (kafka is freed then too). */
mx_pipeline *mx_pipeline_new(mx_service *svc, mx_kafka *kafka, const char *why,
                             const mx_pipeline_options *o);
void mx_pipeline_free(mx_pipeline *p);

/* The view configured from the environment: PW_METRICS_STALL_SECONDS [30]
 * (1..3600), PW_METRICS_KAFKA_TIMEOUT_MS [1000] (50..10000), PW_KAFKA_GROUP
 * [plantwatch-consumers], PW_TOPIC_TELEMETRY [sensor-telemetry],
 * PW_TOPIC_ALERTS [sensor-alerts] and the PW_KAFKA_* connection (without
 * Kafka credentials the view answers from the store and says so). NULL with
 * err on a bad value. */
mx_pipeline *mx_pipeline_from_env(mx_service *svc, char *err, size_t errlen);

/* Answers GET MX_PIPELINE_PATH on c. */
enum MHD_Result mx_pipeline_serve_rest(mx_pipeline *p, struct MHD_Connection *c);
/* Adds the Pipeline method to server. 0 or -1. */
int mx_pipeline_register_grpc(mx_pipeline *p, pw_grpc_server *server);

/* Pure parts (unit tests). From pp's accepted, counted, committed and
 * last_stored_ms: lag, difference, verdict (malloc'd) and stalled_since_ms.
 * kafka_known 0: accepted and committed are unknown (0), verdict "unknown".
 * -1 on ENOMEM. */
int mx_pipeline_judge(Iot__V1__PartitionPipeline *pp, int kafka_known, int64_t now_ms,
                      int64_t stall_ms);
/* From r's judged partitions: in_sync and the one-sentence verdict
 * (malloc'd). kafka_error: why Kafka did not answer, NULL when it did. */
int mx_pipeline_summarize(Iot__V1__PipelineResponse *r, const char *kafka_error, long stall_s);

#endif
