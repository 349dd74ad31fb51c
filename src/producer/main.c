/* main: plantwatch-producer start-up and shutdown. Loads the configuration,
 * starts Kafka, REST and gRPC, then waits for SIGTERM/SIGINT: stop accepting,
 * let in-flight requests finish (bounded by PW_SHUTDOWN_TIMEOUT_MS), flush
 * Kafka, exit 0. */
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "producer.h"
#include "pw_log.h"
#include "pw_time.h"

static int pw_producer_start(pw_producer *p, char *err, size_t errlen)
{
    p->prom = pw_prom_new();
    if (!p->prom) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    pw_producer_metrics_init(p);
    if (pw_kafka_out_init(&p->kafka, &p->cfg, p->prom, err, errlen) != 0) {
        return -1;
    }
    if (pw_kafka_out_start(&p->kafka) != 0) {
        snprintf(err, errlen, "cannot start Kafka threads");
        return -1;
    }
    if (pw_rest_start(p, err, errlen) != 0) {
        return -1;
    }
    return pw_grpc_ingest_start(p, err, errlen);
}

static void pw_producer_drain(pw_producer *p)
{
    int64_t deadline = pw_monotonic_us() + p->cfg.shutdown_timeout_ms * 1000;
    atomic_store(&p->stopping, 1);
    pw_rest_quiesce(p);
    long remaining_ms = p->cfg.shutdown_timeout_ms;
    pw_grpc_ingest_stop(p, (int)remaining_ms);
    while (atomic_load(&p->inflight) > 0 && pw_monotonic_us() < deadline) {
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    remaining_ms = (long)((deadline - pw_monotonic_us()) / 1000);
    int left = atomic_load(&p->inflight);
    pw_log(PW_LOG_INFO, "shutdown", "%d request(s) still in flight; flushing Kafka", left);
    /* Flush (bounded), then fail whatever is left so suspended requests answer. */
    pw_kafka_out_close(&p->kafka, remaining_ms > 0 ? (int)remaining_ms : 0);
    pw_rest_stop(p);
}

int main(void)
{
    /* Few malloc arenas: many short-lived allocations from many threads
     * (MHD, gRPC workers, librdkafka) otherwise fragment into one arena per
     * thread and inflate the resident set several times over. */
    mallopt(M_ARENA_MAX, 2);
    /* Request-sized buffers (gRPC messages up to 4 MiB and their copies) come
     * from mmap and go back to the system when freed: a fixed threshold stops
     * glibc from raising it after the first large free, which would keep
     * every later large request resident in the heap. */
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);
    pw_producer p;
    memset(&p, 0, sizeof(p));
    char err[512];
    /* Signals are taken synchronously by this thread only. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (pw_producer_config_load(&p.cfg, 1, err, sizeof(err)) != 0) {
        pw_log_init("producer", getenv("PW_INSTANCE"), NULL);
        pw_log(PW_LOG_ERROR, "config", "%s", err);
        return 2;
    }
    pw_log_init("producer", p.cfg.instance, p.cfg.log_level);
    if (pw_producer_start(&p, err, sizeof(err)) != 0) {
        pw_log(PW_LOG_ERROR, "startup", "%s", err);
        return 1;
    }
    pw_log(PW_LOG_INFO, "started", "REST on %s:%ld, gRPC on %s:%ld, topics %s/%s", p.cfg.bind_addr,
           p.cfg.http_port, p.cfg.bind_addr, p.cfg.grpc_port, p.cfg.topic_telemetry,
           p.cfg.topic_alerts);
    int sig = 0;
    sigwait(&sigs, &sig);
    pw_log(PW_LOG_INFO, "shutdown", "signal %d: draining", sig);
    pw_producer_drain(&p);
    pw_prom_free(p.prom);
    pw_log(PW_LOG_INFO, "stopped", "bye");
    pw_producer_config_free(&p.cfg);
    return 0;
}
