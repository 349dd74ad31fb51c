/* ingest: the transport-independent half of the producer. Turns a REST body
 * (JSON) or decoded gRPC messages into validated payloads, assigns each its
 * idempotency token and packs it into an iot.v1.Envelope ready for Kafka.
 * Pure code: no I/O, no threads, so it is unit-tested and fuzzed directly. */
#ifndef PW_PRODUCER_INGEST_H
#define PW_PRODUCER_INGEST_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "iot/v1/ingest.pb-c.h"
#include "iot/v1/telemetry.pb-c.h"
#include "pw_uuid.h"
#include "pw_validate.h"

#define PW_PRODUCER_SCHEMA_VERSION 1
#define PW_PRODUCER_CONTENT_TYPE "application/x-protobuf"

typedef enum { PW_KIND_READING = 0, PW_KIND_ALERT = 1 } pw_kind;

const char *pw_kind_name(pw_kind k); /* "reading" / "alert" (token derivation) */

/* Who sent a request and how: stamped on every envelope it produces. */
typedef struct {
    const char *consumer; /* gateway consumer name, never NULL */
    const char *idem_key; /* Idempotency-Key or NULL */
    /* Stream position of the request message when idem_key is the call's
     * metadata key (it then spans many messages), else -1. */
    long stream_message;
    Iot__V1__Source source;
    int64_t received_ms;
} pw_ingest_meta;

/* Where a record stands. Written by the sender (NOT_SENT → ENQUEUED or
 * FAILED) and by the delivery report (ENQUEUED → DELIVERED / FAILED), read
 * once the request's pw_delivery completed. */
typedef enum {
    PW_MSG_NOT_SENT = 0, /* never handed to Kafka (an earlier record failed) */
    PW_MSG_ENQUEUED,
    PW_MSG_DELIVERED,
    PW_MSG_FAILED
} pw_msg_state;

struct pw_delivery;

/* One Kafka record: packed envelope, its key and token, and its outcome. */
typedef struct {
    pw_kind kind;
    unsigned index; /* position among the request's readings (or alerts) */
    char token[PW_UUID_LEN];
    char *key;      /* device_id (heap copy) */
    uint8_t *value; /* packed Envelope (malloc); NULL once handed to Kafka */
    size_t value_len;
    pw_msg_state state;
    int err;                 /* rd_kafka_resp_err_t when FAILED */
    struct pw_delivery *dlv; /* the request's tracker while ENQUEUED (borrowed) */
} pw_ingest_msg;

#define PW_INGEST_RANDOM_POOL 512 /* random bytes fetched at once: 32 tokens */

typedef struct evp_md_ctx_st pw_ingest_sha; /* OpenSSL EVP_MD_CTX */

typedef struct {
    pw_ingest_msg *msgs;
    size_t n, cap;
    pw_ingest_sha *sha; /* content digests; created on first use, owned */
    /* Entropy for random (v4) tokens, refilled with one getrandom() call per
     * 32 tokens instead of a generator call per token. */
    uint8_t rnd[PW_INGEST_RANDOM_POOL];
    size_t rnd_off;
} pw_ingest_batch;

void pw_ingest_batch_init(pw_ingest_batch *b);
void pw_ingest_batch_free(pw_ingest_batch *b);

/* Packs one reading/alert (borrowed) into an envelope appended to b. With
 * idem_key set the token is pw_uuid_derive(consumer, idem_key \x1f digest
 * [\x1f "m" stream_message], kind, occurrence), else random: the same key and
 * the same content give the same token wherever the item sits in the
 * request, different content gives a different token. sent_ts is the item's
 * ts as the client sent it (0 when absent and filled with the receive time),
 * so a retry without ts still matches. occurrence tells identical items of
 * one request apart (0 for the first). index is the item's position, kept in
 * the record for the answer. Returns 0 or -1 (out of memory). */
int pw_ingest_add_reading(pw_ingest_batch *b, const Iot__V1__Reading *r, int64_t sent_ts,
                          const pw_ingest_meta *m, unsigned index, unsigned occurrence);
int pw_ingest_add_alert(pw_ingest_batch *b, const Iot__V1__Alert *a, int64_t sent_ts,
                        const pw_ingest_meta *m, unsigned index, unsigned occurrence);

/* Content digest of an item as sent (ts = sent_ts): 32 lower-case hex digits
 * (the first 128 bits of SHA-256 over the packed Reading/Alert without
 * unknown fields), NUL-terminated. */
#define PW_INGEST_DIGEST_LEN 33
int pw_ingest_digest_reading(pw_ingest_batch *b, const Iot__V1__Reading *r, int64_t sent_ts,
                             char out[PW_INGEST_DIGEST_LEN]);
int pw_ingest_digest_alert(pw_ingest_batch *b, const Iot__V1__Alert *a, int64_t sent_ts,
                           char out[PW_INGEST_DIGEST_LEN]);

/* Details listed in an error answer at most; the answer also says how many
 * there were in total. */
#define PW_INGEST_MAX_DETAILS 20

/* Outcome of decoding a request body: an HTTP-level error description. */
typedef struct {
    unsigned status;  /* 400 */
    const char *code; /* "invalid_json" / "validation_failed" */
    char message[256];
    json_t *details;      /* owned; NULL or an array of at most PW_INGEST_MAX_DETAILS */
    size_t details_total; /* problems found (more than listed when > the cap) */
} pw_ingest_error;

void pw_ingest_error_clear(pw_ingest_error *e);

/* Structural JSON tokens ({ [ , : outside strings) a REST body may hold,
 * counted before jansson decodes it: jansson spends ~230 bytes per value, so
 * 1 MiB of "{}," would cost ~80 MiB decoded. 32 per item is twice a full
 * reading or alert. */
#define PW_INGEST_MAX_JSON_TOKENS (32 * PW_MAX_BATCH)
_Static_assert(PW_INGEST_MAX_JSON_TOKENS == 32000, "the error message says 32000");

/* REST: parses body (one object or an array of 1..PW_MAX_BATCH objects of
 * `kind`), validates every item (all-or-nothing) and, when all are valid,
 * appends their envelopes to b. Returns the number of messages (>0) or -1
 * with e filled. */
int pw_ingest_from_json(pw_ingest_batch *b, pw_kind kind, const char *body, size_t len,
                        const pw_ingest_meta *m, pw_ingest_error *e);

/* gRPC: validates a decoded PublishRequest (ts 0 = receive time, filled in
 * place), then appends readings first, then alerts. Returns the number of
 * messages or -1 with a message naming the field in msg (at most
 * PW_INGEST_MAX_DETAILS problems, then how many more). */
int pw_ingest_from_request(pw_ingest_batch *b, Iot__V1__PublishRequest *req,
                           const pw_ingest_meta *m, char *msg, size_t msglen);

#endif
