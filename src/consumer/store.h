/* store: everything the consumer writes to MongoDB/FerretDB — the storage
 * layout (created idempotently at startup, by server kind: the only
 * server-specific code), raw documents behind the token gate, device-day
 * presence, the rollup buckets, the minute series and the device census
 * (guarded writes that a stale writer cannot roll back), per-partition
 * progress, and the retention sweep of servers without TTL indexes.
 * The files behind it: store.c (object, write orchestration, dedupe),
 * layout.c, raw.c, presence.c, buckets.c, series.c, progress.c,
 * retention.c, bulk.c (see store_int.h).
 * One pwc_store per process; the write path runs on the consume thread,
 * ping may be called from any thread (client pool). */
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
    size_t bucket_reads; /* bucket and census documents read (not known to this process) */
    size_t conflicts;    /* guarded writes that lost a race (re-read and re-folded) */
    size_t restored;     /* raw readings restored after a crash between gate and raw insert */
    /* records counted in a bucket's overflow cell, by rollup kind (readings,
     * alerts) and resolution (hour, day); see rollup.h */
    size_t overflow[2][2];
    size_t census_overflow; /* census entries or changes left out for the bound */
    int refused; /* the call failed because the store refused a document for good: writing
                    the same records again fails the same way (isolate the culprit) */
} pwc_write_result;

/* Test-only fault injection (PW_TEST_FAULT): the process exits with status
 * 137, as after SIGKILL, at the named point of a write. */
typedef enum {
    PWC_FAULT_NONE = 0,
    PWC_FAULT_AFTER_GATE = 1, /* "after_gate": gate inserted, raw documents not */
} pwc_store_fault;

/* Test-only (PW_TEST_FAULT "refuse_device:<id>", "refuse_raw_device:<id>"):
 * the documents of that (normalized) device id carry a field name the store
 * refuses, so its records are refused deterministically; raw_only: only its
 * raw telemetry documents (refused after the gate insert). */
void pwc_store_refuse_device(pwc_store *s, const char *device, int raw_only);

/* A client pool for the store named by PW_MONGO_URI_FILE / PW_MONGO_URI
 * (connects lazily), database db (copied). explain: check every query
 * shape's plan once (see pw_store.h). NULL with err. */
pwc_store *pwc_store_new(const char *db, const char *app_name, int explain, pwc_store_fault fault,
                         char *err, size_t errlen);
void pwc_store_free(pwc_store *s);

/* Detects the server (buildInfo: ferretdbVersion → FerretDB) and creates the
 * collections and indexes. Idempotent. 0 or -1 with err. */
int pwc_store_prepare(pwc_store *s, long telemetry_ttl_s, long alerts_ttl_s, char *err,
                      size_t errlen);
int pwc_store_is_ferretdb(const pwc_store *s);

/* 1 when the server answers ping, else 0. Thread-safe. */
int pwc_store_ping(pwc_store *s);

/* Stores a batch: gate and raw inserts, presence, rollups, minute series,
 * census, progress.
 * Idempotent: the same batch (or any overlap of it) written again changes
 * nothing. 0, or -1 with err when the store failed: res->refused says
 * whether retrying can help (0: transient, retry the whole call; 1: a record
 * of the call is refused for good, isolate it by writing parts). */
int pwc_store_write(pwc_store *s, pwc_entry *entries, size_t n, pwc_write_result *res, char *err,
                    size_t errlen);

/* After e was refused for good: removes what of it this delivery stored
 * (its gate entry, when the gate holds e's own position, and then its raw
 * reading), so that a replay of its dead letter stores it afresh. 0 or -1
 * with err (transient: call again). */
int pwc_store_discard(pwc_store *s, const pwc_entry *e, char *err, size_t errlen);

/* Writes the settled offsets that pwc_store_write keeps for at most a second
 * (call before exiting). 0 or -1 with err. */
int pwc_store_flush_progress(pwc_store *s, char *err, size_t errlen);

/* Forgets the bucket, series and census states this process knows. Call on every
 * rebalance: a partition that comes back may have been written by another
 * consumer meanwhile. Write-path thread only. */
void pwc_store_forget_buckets(pwc_store *s);

/* Deletes what is older than its retention on servers without TTL indexes
 * (FerretDB): raw telemetry and alerts, gate tokens, rollup buckets and
 * presence, one pushed-down {<bucket field>: <hour>} delete per expired hour.
 * Returns the number deleted, or -1 with err. Thread-safe (its own client;
 * run by the sweeper thread). */
int64_t pwc_store_sweep(pwc_store *s, int64_t now_ms, long telemetry_ttl_s, long alerts_ttl_s,
                        char *err, size_t errlen);

#endif
