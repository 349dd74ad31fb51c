/* dq_letter: the anatomy of a dead letter. Owns reading the DLQ headers the
 * consumer writes (pw-dlq-reason, pw-dlq-detail, pw-source-topic,
 * pw-source-partition, pw-source-offset) into a view, the selection filter,
 * the replay checks and the header set a replay carries. Pure: no broker. */
#ifndef DQ_LETTER_H
#define DQ_LETTER_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

#define DQ_H_REASON "pw-dlq-reason"
#define DQ_H_DETAIL "pw-dlq-detail"
#define DQ_H_TOPIC "pw-source-topic"
#define DQ_H_PARTITION "pw-source-partition"
#define DQ_H_OFFSET "pw-source-offset"
#define DQ_H_REPLAYED_FROM "pw-dlq-replayed-from"

typedef struct {
    int32_t partition;        /* DLQ partition */
    int64_t offset;           /* DLQ offset */
    int64_t time_ms;          /* the DLQ record's timestamp; -1 when it has none */
    char *reason;             /* pw-dlq-reason; heap, owned; NULL when absent */
    char *detail;             /* pw-dlq-detail; heap, owned; NULL when absent */
    char *source_topic;       /* pw-source-topic; heap, owned; NULL when absent */
    int32_t source_partition; /* pw-source-partition; -1 when absent or malformed */
    int64_t source_offset;    /* pw-source-offset; -1 when absent or malformed */
    char *replayed_from;      /* pw-dlq-replayed-from of an earlier replay; heap, owned */
    const void *key;          /* borrowed from the record: valid while it lives; NULL = no key */
    size_t key_len;
    size_t value_len;
} dq_letter;

/* Fills l from a record's parts; headers may be NULL. Strings are copied
 * (a header value ends at its first NUL byte); key is borrowed. 0, or -1 when
 * out of memory. Clear with dq_letter_clear. */
int dq_letter_from_parts(dq_letter *l, int32_t partition, int64_t offset, int64_t time_ms,
                         const rd_kafka_headers_t *headers, const void *key, size_t key_len,
                         size_t value_len);

/* The same from a consumed record (borrowed: l->key points into m). */
int dq_letter_from_message(dq_letter *l, const rd_kafka_message_t *m);

void dq_letter_clear(dq_letter *l);

/* 1 when l passes the filters (NULL = any): exact reason and source topic. */
int dq_letter_selected(const dq_letter *l, const char *reason, const char *topic);

/* 0 when l may be replayed (its source topic is one of the n_targets
 * targets), else -1 with the reason in why. */
int dq_letter_replayable(const dq_letter *l, char *const targets[], size_t n_targets, char *why,
                         size_t whylen);

/* "sensor-telemetry:0:4711" into out, or "-" without a source topic. */
void dq_letter_origin(const dq_letter *l, char *out, size_t outlen);

/* 1 when a header of this name is the DLQ's own (pw-dlq-*, pw-source-*):
 * replays drop those. */
int dq_header_is_dlq(const char *name);

/* The headers of a replay: every header of orig (may be NULL) in order except
 * the DLQ's own, then pw-dlq-replayed-from = "<dlq_partition>:<dlq_offset>".
 * A new list owned by the caller (librdkafka takes it over on a successful
 * produce), or NULL when out of memory. */
rd_kafka_headers_t *dq_replay_headers(const rd_kafka_headers_t *orig, int32_t dlq_partition,
                                      int64_t dlq_offset);

#endif
