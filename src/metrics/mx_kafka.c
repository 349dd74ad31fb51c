/* mx_kafka: metadata, watermarks and group offsets for the pipeline view
 * (see mx_kafka.h). */
#include "mx_kafka.h"

#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "pw_kafka.h"
#include "pw_log.h"
#include "pw_time.h"

struct mx_kafka {
    rd_kafka_t *rk;
};

static void mx_kafka_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    /* an unreachable cluster is reported by the view; keep the log readable */
    pw_log(level <= LOG_ERR ? PW_LOG_WARN : PW_LOG_DEBUG, "kafka", "%s: %s", fac, buf);
}

mx_kafka *mx_kafka_new(const char *group, char *err, size_t errlen)
{
    pw_kafka_settings s;
    if (pw_kafka_settings_from_env(&s, "metrics", err, errlen) != 0) {
        return NULL;
    }
    rd_kafka_conf_t *conf = pw_kafka_conf_new(&s, err, errlen);
    pw_kafka_settings_free(&s);
    if (conf == NULL) {
        return NULL;
    }
    if (pw_kafka_conf_set(conf, "group.id", group, err, errlen) != 0 ||
        pw_kafka_conf_set(conf, "enable.auto.commit", "false", err, errlen) != 0) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_log_cb(conf, mx_kafka_log);
    mx_kafka *k = calloc(1, sizeof(*k));
    char kerr[256];
    if (k == NULL || (k->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, kerr, sizeof(kerr))) == NULL) {
        snprintf(err, errlen, "%s", k ? kerr : "out of memory");
        rd_kafka_conf_destroy(conf);
        free(k);
        return NULL;
    }
    return k;
}

void mx_kafka_free(mx_kafka *k)
{
    if (k == NULL) {
        return;
    }
    rd_kafka_destroy(k->rk);
    free(k);
}

void mx_kafka_parts_free(mx_kafka_part *parts, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(parts[i].topic);
    }
    free(parts);
}

/* Milliseconds left until until_us, at least 1; 0 when passed. */
static int left_ms(int64_t until_us)
{
    int64_t left = (until_us - pw_monotonic_us()) / 1000;
    return left <= 0 ? 0 : (int)left;
}

/* The ingest topics' partitions from the cluster's metadata. */
static int list_partitions(mx_kafka *k, const char *const *topics, size_t ntopics, int64_t until_us,
                           rd_kafka_topic_partition_list_t *list, char *err, size_t errlen)
{
    const struct rd_kafka_metadata *md = NULL;
    int ms = left_ms(until_us);
    rd_kafka_resp_err_t e =
        ms > 0 ? rd_kafka_metadata(k->rk, 1, NULL, &md, ms) : RD_KAFKA_RESP_ERR__TIMED_OUT;
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(err, errlen, "metadata: %s", rd_kafka_err2str(e));
        return -1;
    }
    int rc = 0;
    for (size_t t = 0; rc == 0 && t < ntopics; t++) {
        int found = 0;
        for (int i = 0; i < md->topic_cnt; i++) {
            const struct rd_kafka_metadata_topic *mt = &md->topics[i];
            if (strcmp(mt->topic, topics[t]) != 0 || mt->err) {
                continue;
            }
            found = 1;
            for (int p = 0; p < mt->partition_cnt; p++) {
                rd_kafka_topic_partition_list_add(list, mt->topic, mt->partitions[p].id);
            }
        }
        if (!found) {
            snprintf(err, errlen, "topic %s not found", topics[t]);
            rc = -1;
        }
    }
    rd_kafka_metadata_destroy(md);
    return rc;
}

static int fill_parts(mx_kafka *k, const rd_kafka_topic_partition_list_t *list, int64_t until_us,
                      mx_kafka_part *parts, char *err, size_t errlen)
{
    for (int i = 0; i < list->cnt; i++) {
        const rd_kafka_topic_partition_t *tp = &list->elems[i];
        int64_t lo = 0, hi = 0;
        int ms = left_ms(until_us);
        rd_kafka_resp_err_t e =
            ms > 0 ? rd_kafka_query_watermark_offsets(k->rk, tp->topic, tp->partition, &lo, &hi, ms)
                   : RD_KAFKA_RESP_ERR__TIMED_OUT;
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
            snprintf(err, errlen, "end offset of %s:%d: %s", tp->topic, (int)tp->partition,
                     rd_kafka_err2str(e));
            return -1;
        }
        if ((parts[i].topic = strdup(tp->topic)) == NULL) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        parts[i].partition = tp->partition;
        parts[i].end = hi;
        parts[i].committed = tp->offset >= 0 ? tp->offset : -1;
    }
    return 0;
}

int mx_kafka_offsets(mx_kafka *k, const char *const *topics, size_t ntopics, int timeout_ms,
                     mx_kafka_part **out, size_t *n, char *err, size_t errlen)
{
    *out = NULL;
    *n = 0;
    int64_t until_us = pw_monotonic_us() + (int64_t)timeout_ms * 1000;
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(8);
    int rc = list_partitions(k, topics, ntopics, until_us, list, err, errlen);
    if (rc == 0) {
        int ms = left_ms(until_us);
        rd_kafka_resp_err_t e =
            ms > 0 ? rd_kafka_committed(k->rk, list, ms) : RD_KAFKA_RESP_ERR__TIMED_OUT;
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
            snprintf(err, errlen, "committed offsets of the consumers' group: %s",
                     rd_kafka_err2str(e));
            rc = -1;
        }
    }
    mx_kafka_part *parts = NULL;
    if (rc == 0 && (parts = calloc(list->cnt ? (size_t)list->cnt : 1, sizeof(*parts))) == NULL) {
        snprintf(err, errlen, "out of memory");
        rc = -1;
    }
    if (rc == 0 && fill_parts(k, list, until_us, parts, err, errlen) != 0) {
        rc = -1;
    }
    if (rc == 0) {
        *out = parts;
        *n = (size_t)list->cnt;
    } else if (parts != NULL) {
        mx_kafka_parts_free(parts, (size_t)list->cnt);
    }
    rd_kafka_topic_partition_list_destroy(list);
    rd_kafka_poll(k->rk, 0); /* serves queued events, so none pile up */
    return rc;
}
