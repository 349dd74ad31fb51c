/* ops: metrics registry and the ops HTTP endpoints (see ops.h). */
#include "ops.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "pw_http.h"

static const double batch_bounds[] = {1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500};
static const double latency_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                        0.25,  0.5,    1,     2.5,  5,     10};
static const double e2e_bounds[] = {0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6,
                                    0.8,   1,    1.5, 2,    3,   5,   10,  30,  60};

int pwc_ops_init(pwc_ops *o, pwc_store *store)
{
    memset(o, 0, sizeof(*o));
    o->store = store;
    o->prom = pw_prom_new();
    if (!o->prom) {
        return -1;
    }
    o->stored = pw_prom_counter(o->prom, "pw_consumer_stored_total",
                                "Documents newly stored, by collection", "collection");
    o->duplicates = pw_prom_counter(o->prom, "pw_consumer_duplicates_total",
                                    "Deliveries whose token was already stored", NULL);
    o->dead_lettered = pw_prom_counter(o->prom, "pw_consumer_dead_lettered_total",
                                       "Records sent to the dead-letter topic", "reason");
    o->lag = pw_prom_gauge(o->prom, "pw_consumer_lag",
                           "Messages behind the partition's high watermark", "topic,partition");
    o->batch_size = pw_prom_histogram(o->prom, "pw_consumer_batch_size", "Records per batch", NULL,
                                      batch_bounds, sizeof(batch_bounds) / sizeof(*batch_bounds));
    o->write_latency = pw_prom_histogram(
        o->prom, "pw_consumer_write_seconds", "Store write time per batch (acknowledged)", NULL,
        latency_bounds, sizeof(latency_bounds) / sizeof(*latency_bounds));
    o->store_errors = pw_prom_counter(o->prom, "pw_consumer_store_errors_total",
                                      "Failed store writes (retried)", NULL);
    o->bucket_reads = pw_prom_counter(
        o->prom, "pw_consumer_bucket_reads_total",
        "Bucket and census documents read from the store before being written", NULL);
    o->conflicts = pw_prom_counter(
        o->prom, "pw_consumer_write_conflicts_total",
        "Guarded bucket or census writes that lost a race to another writer (read again and "
        "folded again)",
        NULL);
    o->restored = pw_prom_counter(o->prom, "pw_consumer_restored_total",
                                  "Raw readings restored whose delivery stopped between the gate "
                                  "insert and the raw insert",
                                  NULL);
    o->paused = pw_prom_gauge(o->prom, "pw_consumer_paused",
                              "1 while partitions are paused for a store outage", NULL);
    o->commit_errors = pw_prom_counter(o->prom, "pw_consumer_commit_errors_total",
                                       "Failed offset commits (retried with the next batch)", NULL);
    o->e2e = pw_prom_histogram(o->prom, "pw_consumer_end_to_end_seconds",
                               "Producer receive time to store acknowledgement, per message", NULL,
                               e2e_bounds, sizeof(e2e_bounds) / sizeof(*e2e_bounds));
    o->dlq_down = pw_prom_gauge(o->prom, "pw_consumer_dlq_unavailable",
                                "1 while dead letters cannot be written (partitions paused)", NULL);
    o->isolated =
        pw_prom_counter(o->prom, "pw_consumer_isolation_writes_total",
                        "Partial writes made to isolate a record the store refused", NULL);
    o->overflow = pw_prom_counter(
        o->prom, "pw_consumer_rollup_overflow_total",
        "Records counted in a bucket's overflow cell because the bucket reached its size bound",
        "collection,resolution");
    o->census_overflow = pw_prom_counter(
        o->prom, "pw_consumer_census_overflow_total",
        "New devices, or zone and firmware changes, left out of a full census shard", NULL);
    return 0;
}

int pwc_ops_ready(void *ctx, char *why, size_t whylen)
{
    pwc_ops *o = ctx;
    if (!atomic_load(&o->kafka_joined)) {
        snprintf(why, whylen, "not yet a member of the consumer group");
        return 0;
    }
    if (!pwc_store_ping(o->store)) {
        snprintf(why, whylen, "store does not answer ping");
        return 0;
    }
    if (atomic_load(&o->dlq_unavailable)) {
        snprintf(why, whylen, "dead letters cannot be written to the DLQ topic (retrying)");
        return 0;
    }
    return 1;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **con_cls)
{
    (void)version;
    (void)upload;
    (void)upload_size;
    (void)con_cls;
    pwc_ops *o = cls;
    enum MHD_Result r;
    if (pw_http_serve_ops(c, url, method, o->prom, pwc_ops_ready, o, &r)) {
        return r;
    }
    return pw_http_send_error(c, 404, "not_found", "no such endpoint", NULL);
}

int pwc_ops_start(pwc_ops *o, const char *addr, long port, char *err, size_t errlen)
{
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) {
        snprintf(err, errlen, "PW_BIND_ADDR %s is not an IPv4 address", addr);
        return -1;
    }
    o->httpd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, (uint16_t)port,
                                NULL, NULL, handle, o, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                                MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30, MHD_OPTION_END);
    if (!o->httpd) {
        snprintf(err, errlen, "cannot listen on %s:%ld", addr, port);
        return -1;
    }
    return 0;
}

void pwc_ops_stop(pwc_ops *o)
{
    if (o->httpd) {
        MHD_stop_daemon(o->httpd);
    }
    o->httpd = NULL;
}

void pwc_ops_free(pwc_ops *o)
{
    pwc_ops_stop(o);
    pw_prom_free(o->prom);
    o->prom = NULL;
}
