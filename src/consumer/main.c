/* plantwatch-consumer: reads sensor-telemetry and sensor-alerts as one group
 * member, stores every record exactly once (FerretDB or MongoDB), dead-letters
 * poison records, and serves /healthz, /readyz and /metrics.
 * main owns startup order and the SIGTERM/SIGINT flag. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "consume.h"
#include "dlq.h"
#include "ops.h"
#include "pw_log.h"
#include "store.h"
#include "sweeper.h"

static volatile sig_atomic_t stop_requested; /* set by the signal handler only */

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* The store may come up after us: retry the layout until it answers. */
static int prepare_store(pwc_store *store, const pwc_config *cfg)
{
    char err[512];
    long backoff = 200;
    while (!stop_requested) {
        if (pwc_store_prepare(store, cfg->telemetry_ttl_s, cfg->alerts_ttl_s, err, sizeof(err)) ==
            0) {
            return 0;
        }
        pw_log(PW_LOG_WARN, "store_unavailable", "preparing the storage layout: %s", err);
        usleep((useconds_t)backoff * 1000);
        backoff = backoff * 2 > cfg->retry_max_ms ? cfg->retry_max_ms : backoff * 2;
    }
    return -1;
}

int main(void)
{
    pwc_config cfg;
    char err[512] = "";
    install_signals();
    int cfg_rc = pwc_config_from_env(&cfg, err, sizeof(err));
    pw_log_init("consumer", cfg.instance ? cfg.instance : "consumer", cfg.log_level);
    if (cfg_rc != 0) {
        pw_log(PW_LOG_ERROR, "config_invalid", "%s", err);
        pwc_config_free(&cfg);
        return 2;
    }
    int rc = 1;
    pwc_ops ops;
    pwc_dlq *dlq = NULL;
    pwc_consumer *consumer = NULL;
    pwc_sweeper *sweeper = NULL;
    pwc_store *store = pwc_store_new(cfg.mongo_db, cfg.instance, (int)cfg.store_explain,
                                     (pwc_store_fault)cfg.test_fault, err, sizeof(err));
    if (!store || pwc_ops_init(&ops, store) != 0) {
        pw_log(PW_LOG_ERROR, "startup_failed", "%s", err);
        pwc_store_free(store);
        pwc_config_free(&cfg);
        return 1;
    }
    if (cfg.test_refuse_device) {
        pwc_store_refuse_device(store, cfg.test_refuse_device, cfg.test_refuse_raw_only);
    }
    if (pwc_ops_start(&ops, cfg.bind_addr, cfg.http_port, err, sizeof(err)) != 0) {
        goto out;
    }
    pw_log(PW_LOG_INFO, "listening", "ops HTTP on %s:%ld", cfg.bind_addr, cfg.http_port);
    if (prepare_store(store, &cfg) != 0) {
        rc = 0; /* stopped while waiting */
        goto out;
    }
    sweeper = pwc_sweeper_start(&cfg, store);
    dlq = pwc_dlq_new(&cfg, err, sizeof(err));
    if (!dlq) {
        goto out;
    }
    consumer = pwc_consumer_new(&cfg, store, dlq, &ops, &stop_requested, err, sizeof(err));
    if (!consumer) {
        goto out;
    }
    pw_log(PW_LOG_INFO, "started", "consuming %s and %s as group %s (batch %ld / %ld ms)",
           cfg.topic_telemetry, cfg.topic_alerts, cfg.group, cfg.batch_max, cfg.batch_ms);
    rc = pwc_consumer_run(consumer);
out:
    if (rc == 1) {
        pw_log(PW_LOG_ERROR, "startup_failed", "%s", err);
    }
    pwc_consumer_free(consumer);
    pwc_sweeper_stop(sweeper);
    pwc_dlq_free(dlq);
    pwc_ops_free(&ops);
    pwc_store_free(store);
    pwc_config_free(&cfg);
    return rc;
}
