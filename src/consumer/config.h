/* config: the consumer's settings, read once from the environment at startup
 * (see docs/architecture.md for the list and defaults). */
#ifndef PWC_CONFIG_H
#define PWC_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "pw_kafka.h"

typedef struct {
    char *bind_addr;
    long http_port;
    char *instance;
    char *log_level;
    pw_kafka_settings kafka;
    char *topic_telemetry;
    char *topic_alerts;
    char *topic_dlq;
    char *group;
    char *mongo_db;           /* PW_MONGO_DB (the URI: PW_MONGO_URI_FILE / PW_MONGO_URI) */
    long batch_max;           /* PW_BATCH_MAX: messages per batch */
    long batch_ms;            /* PW_BATCH_MS: longest a batch waits to fill */
    long telemetry_ttl_s;     /* PW_TELEMETRY_TTL_SECONDS */
    long alerts_ttl_s;        /* PW_ALERTS_TTL_SECONDS */
    long sweep_interval_s;    /* PW_RETENTION_SWEEP_SECONDS (FerretDB only; 0 = off) */
    long retry_max_ms;        /* PW_STORE_RETRY_MAX_MS: backoff cap while the store is down */
    long session_timeout_ms;  /* PW_KAFKA_SESSION_TIMEOUT_MS */
    long store_explain;       /* PW_STORE_EXPLAIN: log each query shape's plan once (0/1) */
    int test_fault;           /* PW_TEST_FAULT (pwc_store_fault); tests only */
    char *test_refuse_device; /* PW_TEST_FAULT=refuse_device:<id>; tests only (owned) */
    int test_refuse_raw_only; /* refuse_raw_device:<id>: only its raw telemetry documents */
} pwc_config;

/* 0, or -1 with a message in err. Strings are heap copies owned by cfg. */
int pwc_config_from_env(pwc_config *cfg, char *err, size_t errlen);
void pwc_config_free(pwc_config *cfg);

#endif
