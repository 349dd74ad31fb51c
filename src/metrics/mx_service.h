/* mx_service: the metrics service's shared context (store, Prometheus
 * registry, per-view instrumentation, the answer cache, the bound on
 * concurrent store computations) and the one entry point both protocols use
 * to run a view: validated parameters in, protobuf-c response out. */
#ifndef MX_SERVICE_H
#define MX_SERVICE_H

#include "mx_cache.h"
#include "mx_gate.h"
#include "mx_history.h"
#include "mx_store.h"
#include "mx_views.h"
#include "pw_prom.h"

#define MX_MAX_VIEWS 8

typedef struct mx_service mx_service;

/* What a gRPC method handler gets as its context. */
typedef struct {
    mx_service *svc;
    const mx_view *view;
} mx_method;

/* What bounds the work of the views. */
typedef struct {
    long cache_ms;      /* reuse an answer this long (0: no cache, see mx_cache) */
    long computations;  /* store computations at once (>= 1) */
    long queue_wait_ms; /* a request waits this long for a computation slot */
} mx_limits;

struct mx_service {
    mx_store *store;
    pw_prom *prom;
    pw_prom_family *requests; /* view, protocol, outcome */
    pw_prom_family *latency;  /* view, protocol */
    pw_prom_family *cache;    /* view, result (hit, miss) */
    mx_cache *answers;        /* NULL: no caching */
    mx_gate *gate;            /* bounds concurrent computations */
    long queue_wait_ms;
    const char *www_dir;         /* NULL: compiled-in dashboard assets */
    struct mx_exporter *exports; /* the export streams (mx_export.h); NULL: none; owned by main */
    mx_method methods[MX_MAX_VIEWS];
    mx_method history_methods[MX_HIST_KINDS]; /* gRPC contexts of mx_history_api */
};

/* Registers the metric families on prom; store, prom and www_dir stay owned
 * by the caller and must outlive s. */
int mx_service_init(mx_service *s, mx_store *store, pw_prom *prom, const char *www_dir,
                    const mx_limits *limits);
void mx_service_free(mx_service *s);

/* Outcome label values. */
#define MX_OUTCOME_OK "ok"
#define MX_OUTCOME_INVALID "invalid_argument"
#define MX_OUTCOME_UNAVAILABLE "unavailable"
#define MX_OUTCOME_TIMEOUT "timeout"
#define MX_OUTCOME_BUSY "busy"

/* What mx_service_run fails with: the MX_STORE_* values, and */
#define MX_RUN_BUSY (-3) /* no computation slot within queue_wait_ms */

/* Answers view v for p — from the cache or by running the view — timing it
 * (latency histogram) and counting the outcome. A computation holds one of
 * the gate's slots and ends its store queries by the store deadline.
 * Returns 0 with the packed response in *buf (malloc'd, caller frees), or
 * with err: MX_STORE_FAILED (store failure), MX_STORE_TIMEOUT (the store
 * deadline passed) or MX_RUN_BUSY (every slot taken). */
int mx_service_run(mx_service *s, const mx_view *v, const char *protocol, const mx_params *p,
                   uint8_t **buf, size_t *len, char *err, size_t errlen);

/* Counts a request that ended before running the view (e.g. invalid). */
void mx_service_count(mx_service *s, const mx_view *v, const char *protocol, const char *outcome);

#endif
