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
    Iot__V1__Source source;
    int64_t received_ms;
} pw_ingest_meta;

/* One Kafka record: packed envelope, its key and token. */
typedef struct {
    pw_kind kind;
    char token[PW_UUID_LEN];
    char *key;      /* device_id (heap copy) */
    uint8_t *value; /* packed Envelope (malloc); NULL once handed to Kafka */
    size_t value_len;
} pw_ingest_msg;

#define PW_INGEST_RANDOM_POOL 512 /* random bytes fetched at once: 32 tokens */

typedef struct {
    pw_ingest_msg *msgs;
    size_t n, cap;
    /* Entropy for random (v4) tokens, refilled with one getrandom() call per
     * 32 tokens instead of a generator call per token. */
    uint8_t rnd[PW_INGEST_RANDOM_POOL];
    size_t rnd_off;
} pw_ingest_batch;

void pw_ingest_batch_init(pw_ingest_batch *b);
void pw_ingest_batch_free(pw_ingest_batch *b);

/* Packs one reading/alert (borrowed) into an envelope appended to b. The token
 * is derived from (consumer, idem_key, kind, index) when idem_key is set, else
 * random. Returns 0 or -1 (out of memory). */
int pw_ingest_add_reading(pw_ingest_batch *b, const Iot__V1__Reading *r, const pw_ingest_meta *m,
                          unsigned index);
int pw_ingest_add_alert(pw_ingest_batch *b, const Iot__V1__Alert *a, const pw_ingest_meta *m,
                        unsigned index);

/* Outcome of decoding a request body: an HTTP-level error description. */
typedef struct {
    unsigned status;  /* 400 */
    const char *code; /* "invalid_json" / "validation_failed" */
    char message[256];
    json_t *details; /* owned; NULL or an array */
} pw_ingest_error;

void pw_ingest_error_clear(pw_ingest_error *e);

/* REST: parses body (one object or an array of 1..PW_MAX_BATCH objects of
 * `kind`), validates every item (all-or-nothing) and, when all are valid,
 * appends their envelopes to b. Returns the number of messages (>0) or -1
 * with e filled. */
int pw_ingest_from_json(pw_ingest_batch *b, pw_kind kind, const char *body, size_t len,
                        const pw_ingest_meta *m, pw_ingest_error *e);

/* gRPC: validates a decoded PublishRequest (ts 0 = receive time, filled in
 * place), then appends readings first, then alerts. index_base offsets the
 * token indexes (streams with one metadata key). Returns the number of
 * messages or -1 with a message naming the field in msg. */
int pw_ingest_from_request(pw_ingest_batch *b, Iot__V1__PublishRequest *req,
                           const pw_ingest_meta *m, unsigned reading_base, unsigned alert_base,
                           char *msg, size_t msglen);

#endif
