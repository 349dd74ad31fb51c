/* store_int: what the files behind store.h share — the store object, bulk
 * helpers, and each concern's entry point for pwc_store_write. Not for use
 * outside src/consumer/store*.c, layout.c, raw.c, presence.c, buckets.c,
 * series.c, progress.c, retention.c and bulk.c. Everything here runs on the write-path
 * thread unless it says otherwise. */
#ifndef PWC_STORE_INT_H
#define PWC_STORE_INT_H

#include <mongoc/mongoc.h>
#include <stdint.h>

#include "cache.h"
#include "census.h"
#include "dedupe.h"
#include "pw_store.h"
#include "store.h"

#define PWC_E_DUPLICATE 11000
#define PWC_E_NS_EXISTS 48
#define PWC_TOKEN_TTL_S (8L * 86400) /* outlives Kafka retention (7 d) */

/* Settled offsets not yet written to consumer_progress (see progress.c). */
#define PWC_PENDING_TP 64

/* One partition's marks in consumer_progress. */
typedef struct {
    char tp[PWC_ORIGIN_LEN];
    int64_t settled; /* -1 unknown */
    int64_t max_off;
} pwc_tp_progress;

/* The progress marks a batch touches; loaded from the store on demand. */
typedef struct {
    pwc_tp_progress *items;
    size_t n;
    int loaded; /* settled marks read from the store */
} pwc_progress_set;

/* Census states of the partitions this process owns. */
#define PWC_CENSUS_STATES 256

struct pwc_store {
    /* touched by the write path (consume thread) only */
    pwc_tp_progress pending[PWC_PENDING_TP]; /* max_off of completely written batches */
    size_t npending;
    int64_t progress_written_us;
    pwc_cache *buckets;      /* rollup "<coll>/<_id>" -> pwc_rollup_state of an owned partition */
    pwc_cache *presence;     /* rollup_device_day _id -> (nothing) */
    pwc_cache *series;       /* series_readings _id -> pwc_series_state of an owned partition */
    pwc_cache *series_zones; /* admission _id -> pwc_series_zones of an owned partition */
    pwc_census *census[PWC_CENSUS_STATES];
    size_t ncensus;
    pwc_write_result *res; /* counters of the running write */
    pwc_store_fault fault;
    char refuse_device[PW_MAX_ID_BYTES + 1]; /* test fault: the store refuses this device */
    int refuse_raw_only;                     /* ... only its raw telemetry documents */
    int refused;                             /* the running write was refused (see bulk.c) */
    char refused_msg[200];
    /* shared */
    pw_store_plans *plans; /* thread-safe */
    mongoc_client_pool_t *pool;
    mongoc_uri_t *uri;
    char *db;
    int ferretdb;
};

void pwc_set_err(char *err, size_t errlen, const char *what, const bson_error_t *e);

/* 1 when e is an answer that will not change if the same write is sent
 * again: the document is invalid, too large, or of a type the server
 * refuses. Anything else (network, timeouts, server selection, shutdown,
 * unknown codes) counts as transient. */
int pwc_error_is_refusal(const bson_error_t *e);
/* Same for a per-document write error (writeErrors[i].code). */
int pwc_code_is_refusal(int64_t code);

/* ---- bulk.c ---------------------------------------------------------------- */

typedef struct {
    int ok;          /* 1 when the command completed (write errors allowed) */
    int other_error; /* a write error other than duplicate key */
    int conflict;    /* the store refused a stale write (FerretDB/PostgreSQL guard) */
    int refused;     /* the store refused a document for good (see pwc_error_is_refusal) */
    char refused_msg[200];
    int64_t n_inserted, n_matched, n_upserted;
    int *dup; /* per op: 1 when it failed with E11000 (optional) */
    size_t nerrors;
} pwc_bulk_result;

/* Records r's refusal, if any, as the running write's (pwc_write_result
 * .refused), so the caller can isolate the refused record. */
void pwc_note_refusal(pwc_store *s, const pwc_bulk_result *r);

/* Executes bulk (destroyed); fills r. 0 when the server answered (write
 * errors are reported in r), -1 on a transport or command failure (r->conflict
 * says whether it was a refused stale write). */
int pwc_bulk_exec(mongoc_bulk_operation_t *bulk, pwc_bulk_result *r, size_t nops, char *err,
                  size_t errlen);
mongoc_bulk_operation_t *pwc_bulk_new(mongoc_collection_t *coll);

/* Update statements per command: FerretDB keeps one pooled PostgreSQL
 * connection per statement until the command ends. */
#define PWC_UPDATES_PER_COMMAND 20

typedef struct {
    mongoc_collection_t *coll;
    mongoc_bulk_operation_t *bulk;
    size_t nops;           /* in the current command */
    pwc_bulk_result total; /* over all commands */
    int failed;
    char *err;
    size_t errlen;
} pwc_update_batch;

void pwc_ub_init(pwc_update_batch *u, mongoc_collection_t *coll, char *err, size_t errlen);
/* The bulk the next statement goes into. */
mongoc_bulk_operation_t *pwc_ub_next(pwc_update_batch *u);
/* Runs what is left; -1 when a command failed (transport or server). */
int pwc_ub_finish(pwc_update_batch *u);

typedef void (*pwc_doc_builder)(const pwc_entry *e, bson_t *doc);

/* Inserts the documents of entries[sel[i]] unordered; state[sel[i]] =
 * PWC_GATE_NEW or PWC_GATE_DUP. 0, or -1 on any other failure. */
int pwc_insert_docs(pwc_store *s, mongoc_database_t *db, const char *coll_name,
                    pwc_doc_builder build, const pwc_entry *entries, const size_t *sel, size_t nsel,
                    int *state, char *err, size_t errlen);

/* Called per document found: the _id and the document. */
typedef void (*pwc_found_fn)(void *ctx, const char *id, const bson_t *doc);

/* Reads the documents of coll with the given _ids, one {_id} query each
 * (pushed down by FerretDB, the _id index on MongoDB), projecting field
 * (NULL: whole documents). purpose names the call site in plan checks and
 * errors. 0 or -1 with err. */
int pwc_find_ids(pwc_store *s, mongoc_database_t *db, const char *coll_name, const char *const *ids,
                 size_t n, const char *field, pwc_found_fn fn, void *ctx, const char *purpose,
                 char *err, size_t errlen);

/* ---- raw.c ------------------------------------------------------------------ */

void pwc_raw_reading_doc(const pwc_entry *e, bson_t *doc);
void pwc_raw_alert_doc(const pwc_entry *e, bson_t *doc);
/* Gate inserts (ingest_tokens for readings, alerts for alerts) and the
 * readings' raw documents for the new tokens. gate[i] gets PWC_GATE_*. */
int pwc_raw_insert(pwc_store *s, mongoc_database_t *db, pwc_entry *entries, size_t n, int *gate,
                   char *err, size_t errlen);
/* Readings of entries[idx[i]] (deliveries whose gate entry is their own)
 * whose raw document is missing get it now. */
int pwc_raw_restore(pwc_store *s, mongoc_database_t *db, pwc_entry *entries, const size_t *idx,
                    size_t n, char *err, size_t errlen);

/* ---- progress.c ---------------------------------------------------------------- */

pwc_tp_progress *pwc_progress_get(pwc_progress_set *p, const char *topic, int32_t part);
int pwc_progress_read(pwc_store *s, mongoc_database_t *db, pwc_progress_set *p, char *err,
                      size_t errlen);
/* Adds a completely written batch's offsets to the pending marks and writes
 * them at most once a second (force: now). */
int pwc_progress_note(pwc_store *s, mongoc_database_t *db, const pwc_progress_set *batch, int force,
                      char *err, size_t errlen);

/* ---- dedupe (store.c) ------------------------------------------------------------ */

/* Decides entries[i].contributes from the gate results; duplicates above
 * their partition's settled mark are resolved by their stored origin, and a
 * reading that turns out to be this delivery's own gets its raw document
 * restored when missing. */
int pwc_decide_contributions(pwc_store *s, mongoc_database_t *db, pwc_entry *entries, size_t n,
                             const int *gate, pwc_progress_set *prog, char *err, size_t errlen);

/* ---- presence.c ------------------------------------------------------------------ */

int pwc_presence_write(pwc_store *s, mongoc_database_t *db, pwc_entry *entries, size_t n,
                       pwc_progress_set *prog, char *err, size_t errlen);
/* After the whole batch is stored: its presence keys need no insert again. */
void pwc_presence_remember(pwc_store *s, const pwc_entry *entries, size_t n);

/* ---- buckets.c -------------------------------------------------------------------- */

/* One document of a guarded write: a full document to insert, or a $set
 * body (heap copies: bson_t wants an alignment that array elements do not
 * get). id is borrowed (lives until the write is settled); doc is owned. */
typedef struct {
    const char *id;
    int stored;
    int64_t guard; /* stored _v */
    bson_t *doc;
} pwc_guarded_item;

/* Takes tmp (built on the stack, destroyed) into it->doc. 0 or -1 (ENOMEM). */
int pwc_guarded_take(pwc_guarded_item *it, bson_t *tmp);
/* Writes items to coll_name: updates under their guards {_id, _v: guard}
 * (PWC_UPDATES_PER_COMMAND per command), then inserts of the new ones. */
pwc_guard_outcome pwc_guarded_write(pwc_store *s, mongoc_database_t *db, const char *coll_name,
                                    pwc_guarded_item *items, size_t n, char *err, size_t errlen);
/* Destroys the items' documents and frees the array. */
void pwc_guarded_free(pwc_guarded_item *items, size_t n);

/* Folds the batch into the rollup buckets of kind k (hour and day) and
 * writes every changed one with a guarded write; lost races are re-read and
 * re-folded. */
int pwc_rollups_write(pwc_store *s, mongoc_database_t *db, int kind, const pwc_entry *entries,
                      size_t n, char *err, size_t errlen);
/* Same for the device census of the batch's partitions. */
int pwc_census_write(pwc_store *s, mongoc_database_t *db, const pwc_entry *entries, size_t n,
                     char *err, size_t errlen);
void pwc_census_forget(pwc_store *s);

/* ---- series.c --------------------------------------------------------------------- */

/* Folds the batch's contributing readings into their device and zone minute
 * series (series.h) and writes every changed document with a guarded write;
 * lost races are re-read and re-folded. */
int pwc_series_write(pwc_store *s, mongoc_database_t *db, const pwc_entry *entries, size_t n,
                     char *err, size_t errlen);
/* Forgets the series and zone admission states (every rebalance). */
void pwc_series_forget(pwc_store *s);

#endif
