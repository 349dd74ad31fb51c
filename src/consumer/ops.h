/* ops: the consumer's operational surface — Prometheus metrics families and
 * the HTTP server for /healthz, /readyz and /metrics. Readiness = joined the
 * consumer group (partitions assigned, possibly none), the store answers
 * ping and the dead-letter topic takes what is sent to it. */
#ifndef PWC_OPS_H
#define PWC_OPS_H

#include <stdatomic.h>

#include "pw_prom.h"
#include "store.h"

typedef struct {
    pw_prom *prom;
    pw_prom_family *stored;          /* pw_consumer_stored_total{collection} */
    pw_prom_family *duplicates;      /* pw_consumer_duplicates_total */
    pw_prom_family *dead_lettered;   /* pw_consumer_dead_lettered_total{reason} */
    pw_prom_family *lag;             /* pw_consumer_lag{topic,partition} */
    pw_prom_family *batch_size;      /* pw_consumer_batch_size (histogram) */
    pw_prom_family *write_latency;   /* pw_consumer_write_seconds (histogram) */
    pw_prom_family *store_errors;    /* pw_consumer_store_errors_total */
    pw_prom_family *bucket_reads;    /* pw_consumer_bucket_reads_total */
    pw_prom_family *conflicts;       /* pw_consumer_write_conflicts_total */
    pw_prom_family *restored;        /* pw_consumer_restored_total */
    pw_prom_family *paused;          /* pw_consumer_paused (0/1) */
    pw_prom_family *commit_errors;   /* pw_consumer_commit_errors_total */
    pw_prom_family *e2e;             /* pw_consumer_end_to_end_seconds (received → stored) */
    pw_prom_family *dlq_down;        /* pw_consumer_dlq_unavailable (0/1) */
    pw_prom_family *isolated;        /* pw_consumer_isolation_writes_total */
    pw_prom_family *overflow;        /* pw_consumer_rollup_overflow_total{collection,resolution} */
    pw_prom_family *census_overflow; /* pw_consumer_census_overflow_total */
    atomic_int kafka_joined;
    atomic_int dlq_unavailable; /* dead letters could not be written (readiness) */
    pwc_store *store;
    struct MHD_Daemon *httpd;
} pwc_ops;

int pwc_ops_init(pwc_ops *o, pwc_store *store);
/* Starts the HTTP server on addr:port; 0 or -1 with err. */
int pwc_ops_start(pwc_ops *o, const char *addr, long port, char *err, size_t errlen);
void pwc_ops_stop(pwc_ops *o);
void pwc_ops_free(pwc_ops *o);

/* Readiness check (pw_ready_fn). */
int pwc_ops_ready(void *ctx, char *why, size_t whylen);

#endif
