/* config: the producer's settings, read once from the environment at start-up
 * (shared keys from the platform contract plus producer-specific ones; see
 * docs/producer.md). Read-only after pw_producer_config_load. */
#ifndef PW_PRODUCER_CONFIG_H
#define PW_PRODUCER_CONFIG_H

#include <stddef.h>

#include "pw_kafka.h"

typedef struct {
    char *bind_addr;              /* PW_BIND_ADDR */
    long http_port;               /* PW_HTTP_PORT */
    long grpc_port;               /* PW_GRPC_PORT (0 disables gRPC) */
    char *instance;               /* PW_INSTANCE */
    char *log_level;              /* PW_LOG_LEVEL */
    char *topic_telemetry;        /* PW_TOPIC_TELEMETRY */
    char *topic_alerts;           /* PW_TOPIC_ALERTS */
    long max_body_bytes;          /* PW_MAX_BODY_BYTES */
    long delivery_timeout_ms;     /* PW_DELIVERY_TIMEOUT_MS */
    long queue_max_messages;      /* PW_QUEUE_MAX_MESSAGES */
    long queue_max_kbytes;        /* PW_QUEUE_MAX_KBYTES */
    long linger_ms;               /* PW_LINGER_MS */
    long enqueue_timeout_ms;      /* PW_ENQUEUE_TIMEOUT_MS */
    long retry_after_s;           /* PW_RETRY_AFTER_S */
    long http_threads;            /* PW_HTTP_THREADS */
    long http_conn_limit;         /* PW_HTTP_CONNECTION_LIMIT */
    long http_idle_timeout_s;     /* PW_HTTP_IDLE_TIMEOUT_S */
    long grpc_workers;            /* PW_GRPC_WORKERS */
    long grpc_max_message;        /* PW_GRPC_MAX_MESSAGE_BYTES */
    long grpc_stream_max_records; /* PW_GRPC_STREAM_MAX_RECORDS */
    long grpc_stream_max_bytes;   /* PW_GRPC_STREAM_MAX_BYTES */
    long shutdown_timeout_ms;     /* PW_SHUTDOWN_TIMEOUT_MS */
    long ready_interval_ms;       /* PW_READY_INTERVAL_MS */
    int log_requests;             /* PW_LOG_REQUESTS (1/0) */
    char *gateway_secret;         /* PW_GATEWAY_SECRET_FILE / PW_GATEWAY_SECRET (trust.h) */
    pw_kafka_settings kafka;      /* PW_KAFKA_* */
} pw_producer_config;

/* Reads every setting; on a malformed value returns -1 with a message in err.
 * with_kafka = 0 skips the Kafka credentials and does not require the gateway
 * secret (unit tests). */
int pw_producer_config_load(pw_producer_config *c, int with_kafka, char *err, size_t errlen);
void pw_producer_config_free(pw_producer_config *c);

#endif
