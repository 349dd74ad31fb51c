/* config: loads pw_producer_config from the environment with documented
 * defaults and range checks. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "pw_env.h"

typedef struct {
    const char *name;
    long def, min, max;
    size_t offset;
} pw_long_setting;

#define PW_CFG(field) offsetof(pw_producer_config, field)

static const pw_long_setting pw_long_settings[] = {
    {"PW_HTTP_PORT", 8081, 1, 65535, PW_CFG(http_port)},
    {"PW_GRPC_PORT", 50051, 0, 65535, PW_CFG(grpc_port)},
    {"PW_MAX_BODY_BYTES", 1048576, 1024, 64L * 1048576, PW_CFG(max_body_bytes)},
    {"PW_DELIVERY_TIMEOUT_MS", 10000, 100, 600000, PW_CFG(delivery_timeout_ms)},
    {"PW_QUEUE_MAX_MESSAGES", 10000, 100, 10000000, PW_CFG(queue_max_messages)},
    {"PW_QUEUE_MAX_KBYTES", 8192, 1024, 2097151, PW_CFG(queue_max_kbytes)},
    {"PW_LINGER_MS", 5, 0, 10000, PW_CFG(linger_ms)},
    {"PW_ENQUEUE_TIMEOUT_MS", 200, 0, 60000, PW_CFG(enqueue_timeout_ms)},
    {"PW_RETRY_AFTER_S", 1, 1, 3600, PW_CFG(retry_after_s)},
    {"PW_HTTP_THREADS", 2, 1, 64, PW_CFG(http_threads)},
    {"PW_HTTP_CONNECTION_LIMIT", 1024, 4, 65536, PW_CFG(http_conn_limit)},
    {"PW_HTTP_IDLE_TIMEOUT_S", 60, 1, 3600, PW_CFG(http_idle_timeout_s)},
    {"PW_GRPC_WORKERS", 32, 1, 1024, PW_CFG(grpc_workers)},
    {"PW_GRPC_MAX_MESSAGE_BYTES", 4194304, 1024, 64L * 1048576, PW_CFG(grpc_max_message)},
    {"PW_GRPC_STREAM_MAX_RECORDS", 1000000, 1, 1000000000L, PW_CFG(grpc_stream_max_records)},
    {"PW_GRPC_STREAM_MAX_BYTES", 268435456L, 1024, 64L * 1073741824L,
     PW_CFG(grpc_stream_max_bytes)},
    {"PW_SHUTDOWN_TIMEOUT_MS", 15000, 0, 600000, PW_CFG(shutdown_timeout_ms)},
    {"PW_READY_INTERVAL_MS", 2000, 100, 60000, PW_CFG(ready_interval_ms)},
};

#define PW_GATEWAY_SECRET_MIN 32
#define PW_GATEWAY_SECRET_MAX 512

/* The gateway's shared secret (trust.h): 32-512 visible ASCII characters, so
 * that it fits a header and cannot be guessed. Required by the service. */
static int pw_cfg_gateway_secret(pw_producer_config *c, int required, char *err, size_t errlen)
{
    c->gateway_secret = pw_env_secret("PW_GATEWAY_SECRET");
    if (c->gateway_secret == NULL) {
        if (required) {
            snprintf(err, errlen,
                     "PW_GATEWAY_SECRET_FILE (or PW_GATEWAY_SECRET) is required: the producer "
                     "accepts ingest requests only from the gateway");
            return -1;
        }
        return 0;
    }
    size_t n = strlen(c->gateway_secret);
    int visible = 1;
    for (size_t i = 0; i < n; i++) {
        if (c->gateway_secret[i] <= ' ' || c->gateway_secret[i] > '~') {
            visible = 0;
        }
    }
    if (n < PW_GATEWAY_SECRET_MIN || n > PW_GATEWAY_SECRET_MAX || !visible) {
        snprintf(err, errlen, "PW_GATEWAY_SECRET must be %d-%d visible ASCII characters",
                 PW_GATEWAY_SECRET_MIN, PW_GATEWAY_SECRET_MAX);
        return -1;
    }
    return 0;
}

static char *pw_cfg_strdup(const char *name, const char *def)
{
    return strdup(pw_env_str(name, def));
}

int pw_producer_config_load(pw_producer_config *c, int with_kafka, char *err, size_t errlen)
{
    memset(c, 0, sizeof(*c));
    for (size_t i = 0; i < sizeof(pw_long_settings) / sizeof(pw_long_settings[0]); i++) {
        const pw_long_setting *s = &pw_long_settings[i];
        long *dst = (long *)((char *)c + s->offset);
        if (pw_env_long(s->name, s->def, s->min, s->max, dst, err, errlen) != 0) {
            return -1;
        }
    }
    long log_requests = 1;
    if (pw_env_long("PW_LOG_REQUESTS", 1, 0, 1, &log_requests, err, errlen) != 0) {
        return -1;
    }
    c->log_requests = (int)log_requests;
    c->bind_addr = pw_cfg_strdup("PW_BIND_ADDR", "127.0.0.1");
    c->instance = pw_cfg_strdup("PW_INSTANCE", "producer");
    c->log_level = pw_cfg_strdup("PW_LOG_LEVEL", "info");
    c->topic_telemetry = pw_cfg_strdup("PW_TOPIC_TELEMETRY", "sensor-telemetry");
    c->topic_alerts = pw_cfg_strdup("PW_TOPIC_ALERTS", "sensor-alerts");
    if (c->delivery_timeout_ms <= c->linger_ms) {
        snprintf(err, errlen, "PW_DELIVERY_TIMEOUT_MS must exceed PW_LINGER_MS");
        return -1;
    }
    if (pw_cfg_gateway_secret(c, with_kafka, err, errlen) != 0) {
        return -1;
    }
    if (with_kafka && pw_kafka_settings_from_env(&c->kafka, "producer", err, errlen) != 0) {
        return -1;
    }
    return 0;
}

void pw_producer_config_free(pw_producer_config *c)
{
    free(c->bind_addr);
    free(c->instance);
    free(c->log_level);
    free(c->topic_telemetry);
    free(c->topic_alerts);
    if (c->gateway_secret) {
        OPENSSL_cleanse(c->gateway_secret, strlen(c->gateway_secret));
        free(c->gateway_secret);
    }
    if (c->kafka.bootstrap || c->kafka.username || c->kafka.password) {
        pw_kafka_settings_free(&c->kafka);
    }
    memset(c, 0, sizeof(*c));
}
