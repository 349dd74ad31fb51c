/* mx_kafka: the metrics service's read-only view of Kafka for the pipeline
 * view — one librdkafka consumer handle that never joins a group, used for
 * topic metadata, the partitions' end offsets (watermarks) and the
 * consumers' group committed offsets (OffsetFetch). Credentials come from
 * the common PW_KAFKA_* variables (user PW_KAFKA_USERNAME, default
 * "metrics"), as for every service; it needs only Describe on the ingest
 * topics and on the consumers' group. Thread-safe. */
#ifndef MX_KAFKA_H
#define MX_KAFKA_H

#include <stddef.h>
#include <stdint.h>

typedef struct mx_kafka mx_kafka;

/* One partition of an ingest topic as Kafka sees it. */
typedef struct {
    char *topic; /* owned by the array (mx_kafka_parts_free) */
    int32_t partition;
    int64_t end;       /* high watermark */
    int64_t committed; /* the group's committed offset, -1 when none */
} mx_kafka_part;

/* A handle for group (copied) from the PW_KAFKA_* environment; NULL with err
 * when no credentials are configured or librdkafka refuses the settings.
 * Nothing connects before the first query. */
mx_kafka *mx_kafka_new(const char *group, char *err, size_t errlen);
void mx_kafka_free(mx_kafka *k);

/* The partitions of topics[0..ntopics) with their end and committed offsets,
 * all within timeout_ms. 0 with *out (malloc'd; mx_kafka_parts_free) and *n,
 * or -1 with err (Kafka unreachable, a topic missing, the time ran out). */
int mx_kafka_offsets(mx_kafka *k, const char *const *topics, size_t ntopics, int timeout_ms,
                     mx_kafka_part **out, size_t *n, char *err, size_t errlen);
void mx_kafka_parts_free(mx_kafka_part *parts, size_t n);

#endif
