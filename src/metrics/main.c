/* plantwatch-metrics: configuration, startup and graceful shutdown of the
 * analytics service (REST shim + dashboard on PW_HTTP_PORT, gRPC
 * MetricsService on PW_GRPC_PORT, reading the store of PW_MONGO_URI_FILE /
 * PW_MONGO_URI, database PW_MONGO_DB). */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <mongoc/mongoc.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mx_export.h"
#include "mx_grpc.h"
#include "mx_rest.h"
#include "mx_service.h"
#include "pw_env.h"
#include "pw_grpc.h"
#include "pw_log.h"
#include "pw_store.h"

typedef struct {
    const char *bind_addr;
    long http_port;
    long grpc_port;
    long http_connections;
    long grpc_workers;
    long grace_ms;
    long cache_ms;
    long computations;
    long queue_wait_ms;
    long store_timeout_ms;
    long ready_timeout_ms;
    long exports;
    long export_timeout_ms;
    const char *mongo_db;
    long store_explain;
    const char *www_dir;
} mx_config;

static int load_config(mx_config *cfg)
{
    char err[256];
    cfg->bind_addr = pw_env_str("PW_BIND_ADDR", "127.0.0.1");
    cfg->mongo_db = pw_env_str("PW_MONGO_DB", "plantwatch");
    cfg->www_dir = pw_env_str("PW_WWW_DIR", NULL);
    struct {
        const char *name;
        long def, min, max;
        long *out;
    } ints[] = {
        {"PW_HTTP_PORT", 8090, 1, 65535, &cfg->http_port},
        {"PW_GRPC_PORT", 50061, 1, 65535, &cfg->grpc_port},
        {"PW_METRICS_HTTP_CONNECTIONS", 256, 4, 4096, &cfg->http_connections},
        {"PW_METRICS_GRPC_WORKERS", 4, 1, 64, &cfg->grpc_workers},
        {"PW_SHUTDOWN_GRACE_MS", 5000, 0, 60000, &cfg->grace_ms},
        {"PW_METRICS_CACHE_MS", 1000, 0, 600000, &cfg->cache_ms},
        {"PW_METRICS_COMPUTATIONS", 4, 1, 64, &cfg->computations},
        {"PW_METRICS_QUEUE_WAIT_MS", 250, 0, 10000, &cfg->queue_wait_ms},
        {"PW_METRICS_STORE_TIMEOUT_MS", 2000, 100, 60000, &cfg->store_timeout_ms},
        {"PW_METRICS_READY_TIMEOUT_MS", 1000, 100, 10000, &cfg->ready_timeout_ms},
        {"PW_STORE_EXPLAIN", 0, 0, 1, &cfg->store_explain},
        {"PW_METRICS_EXPORTS", 2, 1, 64, &cfg->exports},
        {"PW_METRICS_EXPORT_TIMEOUT_MS", 30000, 1000, 600000, &cfg->export_timeout_ms},
    };
    for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
        if (pw_env_long(ints[i].name, ints[i].def, ints[i].min, ints[i].max, ints[i].out, err,
                        sizeof(err)) != 0) {
            pw_log(PW_LOG_ERROR, "config_invalid", "%s", err);
            return -1;
        }
    }
    return 0;
}

static struct MHD_Daemon *start_http(const mx_config *cfg, mx_service *svc)
{
    static struct sockaddr_in addr; /* read by MHD at start only */
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)cfg->http_port);
    if (inet_pton(AF_INET, cfg->bind_addr, &addr.sin_addr) != 1) {
        pw_log(PW_LOG_ERROR, "config_invalid", "PW_BIND_ADDR %s is not an IPv4 address",
               cfg->bind_addr);
        return NULL;
    }
    /* a thread per connection: a request waiting for the store (bounded by the
     * computation slots and the store deadline) never delays another
     * connection, so /healthz answers at once under any load of views */
    return MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG,
        (uint16_t)cfg->http_port, NULL, NULL, mx_rest_handle, svc, MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&addr, MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->http_connections,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30, MHD_OPTION_LISTENING_ADDRESS_REUSE, 1,
        MHD_OPTION_END);
}

static pw_grpc_server *start_grpc(const mx_config *cfg, mx_service *svc)
{
    char addr[128], err[256];
    snprintf(addr, sizeof(addr), "%s:%ld", cfg->bind_addr, cfg->grpc_port);
    pw_grpc_server *g = pw_grpc_server_new(addr, 64 * 1024, err, sizeof(err));
    if (g == NULL) {
        pw_log(PW_LOG_ERROR, "grpc_start_failed", "%s", err);
        return NULL;
    }
    if (mx_grpc_register(svc, g) != 0 ||
        pw_grpc_server_start(g, (unsigned)cfg->grpc_workers, err, sizeof(err)) != 0) {
        pw_log(PW_LOG_ERROR, "grpc_start_failed", "%s on %s", err, addr);
        pw_grpc_server_free(g);
        return NULL;
    }
    return g;
}

/* Blocks until SIGTERM or SIGINT (both blocked in every thread). */
static int wait_for_signal(const sigset_t *set)
{
    int sig = 0;
    sigwait(set, &sig);
    return sig;
}

int main(void)
{
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL); /* inherited by every thread started below */
    signal(SIGPIPE, SIG_IGN);

    if (pw_log_init("metrics", pw_env_str("PW_INSTANCE", "metrics"),
                    pw_env_str("PW_LOG_LEVEL", "info")) != 0) {
        pw_log(PW_LOG_WARN, "config_invalid", "unknown PW_LOG_LEVEL, using info");
    }
    mx_config cfg;
    if (load_config(&cfg) != 0) {
        return 2;
    }
    pw_store_log_to_json();
    mongoc_init();
    char err[256];
    int rc = 1;
    /* every client of the pool is held by a computation (the readiness ping has its own) */
    mx_store_options so = {(unsigned)cfg.computations + 1, (int)cfg.store_explain,
                           cfg.store_timeout_ms, cfg.ready_timeout_ms};
    mx_store *store = mx_store_new(cfg.mongo_db, &so, err, sizeof(err));
    pw_prom *prom = pw_prom_new();
    mx_service svc;
    memset(&svc, 0, sizeof(svc));
    struct MHD_Daemon *http = NULL;
    pw_grpc_server *grpc = NULL;
    mx_exporter *exports = NULL;
    if (store == NULL || prom == NULL) {
        pw_log(PW_LOG_ERROR, "startup_failed", "%s", store ? "out of memory" : err);
        goto out;
    }
    mx_limits limits = {cfg.cache_ms, cfg.computations, cfg.queue_wait_ms};
    if (mx_service_init(&svc, store, prom, cfg.www_dir, &limits) != 0) {
        pw_log(PW_LOG_ERROR, "startup_failed", "cannot register metrics");
        goto out;
    }
    if ((exports = mx_exporter_new(store, (unsigned)cfg.exports, cfg.export_timeout_ms)) == NULL) {
        pw_log(PW_LOG_ERROR, "startup_failed", "out of memory");
        goto out;
    }
    svc.exports = exports;
    if ((http = start_http(&cfg, &svc)) == NULL) {
        pw_log(PW_LOG_ERROR, "http_start_failed", "cannot listen on %s:%ld", cfg.bind_addr,
               cfg.http_port);
        goto out;
    }
    if ((grpc = start_grpc(&cfg, &svc)) == NULL) {
        goto out;
    }
    pw_log_fields(PW_LOG_INFO, "started",
                  json_pack("{s:s, s:I, s:I, s:s}", "bind", cfg.bind_addr, "http_port",
                            (json_int_t)cfg.http_port, "grpc_port", (json_int_t)cfg.grpc_port, "db",
                            cfg.mongo_db),
                  "metrics service listening: REST %s:%ld, gRPC %s:%ld", cfg.bind_addr,
                  cfg.http_port, cfg.bind_addr, cfg.grpc_port);
    int sig = wait_for_signal(&stop);
    pw_log(PW_LOG_INFO, "stopping", "signal %d: draining requests", sig);
    rc = 0;
out:
    if (grpc != NULL) {
        pw_grpc_server_stop(grpc, (int)cfg.grace_ms);
        pw_grpc_server_free(grpc);
    }
    if (http != NULL) {
        MHD_stop_daemon(http); /* finishes requests in progress */
    }
    mx_exporter_free(exports); /* after the daemon: no export runs any more */
    mx_service_free(&svc);
    pw_prom_free(prom);
    mx_store_free(store);
    mongoc_cleanup();
    pw_log(PW_LOG_INFO, "stopped", "metrics service stopped");
    return rc;
}
