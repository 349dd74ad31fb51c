/* config: environment → pwc_config, with range checks on every number. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pw_env.h"

static char *dup_env(const char *name, const char *def)
{
    return strdup(pw_env_str(name, def));
}

typedef struct {
    const char *name;
    long def, min, max;
    long *out;
} pwc_num_opt;

int pwc_config_from_env(pwc_config *cfg, char *err, size_t errlen)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->bind_addr = dup_env("PW_BIND_ADDR", "127.0.0.1");
    cfg->instance = dup_env("PW_INSTANCE", "consumer");
    cfg->log_level = dup_env("PW_LOG_LEVEL", "info");
    cfg->topic_telemetry = dup_env("PW_TOPIC_TELEMETRY", "sensor-telemetry");
    cfg->topic_alerts = dup_env("PW_TOPIC_ALERTS", "sensor-alerts");
    cfg->topic_dlq = dup_env("PW_TOPIC_DLQ", "sensor-dlq");
    cfg->group = dup_env("PW_KAFKA_GROUP", "plantwatch-consumers");
    cfg->mongo_db = dup_env("PW_MONGO_DB", "plantwatch");
    const pwc_num_opt nums[] = {
        {"PW_HTTP_PORT", 8101, 0, 65535, &cfg->http_port},
        {"PW_BATCH_MAX", 2000, 1, 10000, &cfg->batch_max},
        {"PW_BATCH_MS", 200, 1, 60000, &cfg->batch_ms},
        {"PW_TELEMETRY_TTL_SECONDS", 2592000, 60, 10L * 365 * 86400, &cfg->telemetry_ttl_s},
        {"PW_ALERTS_TTL_SECONDS", 2592000, 60, 10L * 365 * 86400, &cfg->alerts_ttl_s},
        {"PW_RETENTION_SWEEP_SECONDS", 3600, 0, 7L * 86400, &cfg->sweep_interval_s},
        {"PW_STORE_RETRY_MAX_MS", 5000, 10, 600000, &cfg->retry_max_ms},
        {"PW_KAFKA_SESSION_TIMEOUT_MS", 10000, 6000, 300000, &cfg->session_timeout_ms},
        {"PW_STORE_EXPLAIN", 0, 0, 1, &cfg->store_explain},
    };
    for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
        if (pw_env_long(nums[i].name, nums[i].def, nums[i].min, nums[i].max, nums[i].out, err,
                        errlen) != 0) {
            return -1;
        }
    }
    const char *fault = pw_env_str("PW_TEST_FAULT", "");
    static const char refuse[] = "refuse_device:", refuse_raw[] = "refuse_raw_device:";
    if (strcmp(fault, "after_gate") == 0) {
        cfg->test_fault = 1;
    } else if (strncmp(fault, refuse, sizeof(refuse) - 1) == 0 && fault[sizeof(refuse) - 1]) {
        cfg->test_refuse_device = strdup(fault + sizeof(refuse) - 1);
    } else if (strncmp(fault, refuse_raw, sizeof(refuse_raw) - 1) == 0 &&
               fault[sizeof(refuse_raw) - 1]) {
        cfg->test_refuse_device = strdup(fault + sizeof(refuse_raw) - 1);
        cfg->test_refuse_raw_only = 1;
    } else if (fault[0] != '\0') {
        snprintf(err, errlen,
                 "PW_TEST_FAULT: unknown fault \"%s\" (after_gate, refuse_device:<device id>, "
                 "refuse_raw_device:<device id>)",
                 fault);
        return -1;
    }
    if (pw_kafka_settings_from_env(&cfg->kafka, "consumer", err, errlen) != 0) {
        return -1;
    }
    return 0;
}

void pwc_config_free(pwc_config *cfg)
{
    free(cfg->bind_addr);
    free(cfg->instance);
    free(cfg->log_level);
    free(cfg->topic_telemetry);
    free(cfg->topic_alerts);
    free(cfg->topic_dlq);
    free(cfg->group);
    free(cfg->mongo_db);
    free(cfg->test_refuse_device);
    pw_kafka_settings_free(&cfg->kafka);
    memset(cfg, 0, sizeof(*cfg));
}
