/* dq_scan: reads a topic from its start to the end offsets it had when the
 * scan began. Owns the snapshot of the high watermarks, the reading client
 * (partitions started explicitly: no consumer group, nothing committed) and
 * the stop conditions: every partition reached its snapshot, the visitor had
 * enough, a signal, or an error. */
#ifndef DQ_SCAN_H
#define DQ_SCAN_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>

#include "dq_signals.h"
#include "pw_kafka.h"

/* Called once per record below the snapshot; m is valid during the call only.
 * Returns 0 to go on, 1 to stop (enough), -1 to stop with an error the visitor
 * has already reported. */
typedef int (*dq_scan_visit)(const rd_kafka_message_t *m, void *ctx);

/* Called after every poll, records or not (e.g. to serve a producer). */
typedef void (*dq_scan_idle)(void *ctx);

typedef struct {
    dq_scan_visit visit;
    dq_scan_idle idle; /* may be NULL */
    void *ctx;         /* handed to both; owned by the caller */
} dq_scan_hooks;

typedef struct {
    long read;       /* records visited */
    int partitions;  /* partitions of the topic */
    long snapshot;   /* records between the start and the end offsets at start */
    int stopped;     /* the visitor asked to stop */
    int interrupted; /* a signal stopped the scan */
    int failed;      /* the visitor reported an error */
} dq_scan_result;

/* Scans topic with the client settings s (read during the call). 0 when the
 * scan ended (completely, by the visitor, or by a signal: see res), -1 with a
 * message in err when Kafka could not be read. */
int dq_scan_run(const pw_kafka_settings *s, int verbose, const char *topic, dq_signals *sig,
                const dq_scan_hooks *hooks, dq_scan_result *res, char *err, size_t errlen);

#endif
