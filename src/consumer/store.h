/* store: everything the consumer writes to MongoDB/FerretDB — the storage
 * layout (created idempotently at startup, by server kind), raw documents with
 * the token as dedupe gate, the devices collection, device-day presence, the
 * per-partition rollup buckets, per-partition progress, and the FerretDB
 * retention sweep.
 * One pwc_store per process; the write path runs on the consume thread, ping
 * may be called from any thread (client pool). */
#ifndef PWC_STORE_H
#define PWC_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "record.h"

typedef struct pwc_store pwc_store;

typedef struct {
    size_t stored_readings;
    size_t stored_alerts;
    size_t duplicates;
    size_t bucket_reads; /* rollup buckets read from the store (not known to this process) */
} pwc_write_result;

pwc_store *pwc_store_new(const char *uri, const char *db, const char *app_name, char *err,
                         size_t errlen);
void pwc_store_free(pwc_store *s);

/* Detects the server (buildInfo: ferretdbVersion → FerretDB) and creates the
 * collections and indexes. Idempotent. 0 or -1 with err. */
int pwc_store_prepare(pwc_store *s, long telemetry_ttl_s, long alerts_ttl_s, char *err,
                      size_t errlen);
int pwc_store_is_ferretdb(const pwc_store *s);

/* 1 when the server answers ping, else 0. Thread-safe. */
int pwc_store_ping(pwc_store *s);

/* Stores a batch: raw inserts, devices, rollups, progress. Idempotent: the
 * same batch (or any overlap of it) written again changes nothing. 0, or -1
 * with err when the store failed (retry the whole call). */
int pwc_store_write(pwc_store *s, pwc_entry *entries, size_t n, pwc_write_result *res, char *err,
                    size_t errlen);

/* Writes the settled offsets that pwc_store_write keeps for at most a second
 * (call before exiting). 0 or -1 with err. */
int pwc_store_flush_progress(pwc_store *s, char *err, size_t errlen);

/* Forgets the rollup bucket states this process knows. Call on every
 * rebalance: a partition that comes back may have been written by another
 * consumer meanwhile. Write-path thread only. */
void pwc_store_forget_buckets(pwc_store *s);

/* Deletes raw telemetry/alerts older than their TTL (FerretDB has no TTL
 * indexes). Returns the number deleted, or -1 with err. */
int64_t pwc_store_sweep(pwc_store *s, int64_t now_ms, long telemetry_ttl_s, long alerts_ttl_s,
                        char *err, size_t errlen);

#endif
