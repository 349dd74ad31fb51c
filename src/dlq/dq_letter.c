/* dq_letter: DLQ headers → dead letter view, selection, replay checks and the
 * replay's header set (see dq_letter.h). */
#include "dq_letter.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A header's last value as a NUL-terminated heap copy; *missing set when the
 * header is absent. NULL with *missing unset means out of memory. */
static char *dq_header_str(const rd_kafka_headers_t *h, const char *name, int *missing)
{
    const void *v = NULL;
    size_t n = 0;
    *missing = 0;
    if (h == NULL || rd_kafka_header_get_last(h, name, &v, &n) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        *missing = 1;
        return NULL;
    }
    return strndup(v != NULL ? (const char *)v : "", v != NULL ? n : 0);
}

/* A decimal header in [0, max]; -1 when absent or malformed. */
static int64_t dq_header_num(const rd_kafka_headers_t *h, const char *name, int64_t max)
{
    const void *v = NULL;
    size_t n = 0;
    if (h == NULL || rd_kafka_header_get_last(h, name, &v, &n) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        v == NULL || n == 0 || n > 19) {
        return -1;
    }
    int64_t out = 0;
    for (size_t i = 0; i < n; i++) {
        char c = ((const char *)v)[i];
        if (c < '0' || c > '9' || out > (max - (c - '0')) / 10) {
            return -1;
        }
        out = out * 10 + (c - '0');
    }
    return out;
}

/* Copies one optional string header into *dst; -1 when out of memory. */
static int dq_take(const rd_kafka_headers_t *h, const char *name, char **dst)
{
    int missing = 0;
    *dst = dq_header_str(h, name, &missing);
    return (*dst == NULL && !missing) ? -1 : 0;
}

int dq_letter_from_parts(dq_letter *l, int32_t partition, int64_t offset, int64_t time_ms,
                         const rd_kafka_headers_t *headers, const void *key, size_t key_len,
                         size_t value_len)
{
    memset(l, 0, sizeof *l);
    l->partition = partition;
    l->offset = offset;
    l->time_ms = time_ms;
    l->key = key;
    l->key_len = key != NULL ? key_len : 0;
    l->value_len = value_len;
    l->source_partition = (int32_t)dq_header_num(headers, DQ_H_PARTITION, INT32_MAX);
    l->source_offset = dq_header_num(headers, DQ_H_OFFSET, INT64_MAX);
    if (dq_take(headers, DQ_H_REASON, &l->reason) != 0 ||
        dq_take(headers, DQ_H_DETAIL, &l->detail) != 0 ||
        dq_take(headers, DQ_H_TOPIC, &l->source_topic) != 0 ||
        dq_take(headers, DQ_H_REPLAYED_FROM, &l->replayed_from) != 0) {
        dq_letter_clear(l);
        return -1;
    }
    return 0;
}

int dq_letter_from_message(dq_letter *l, const rd_kafka_message_t *m)
{
    rd_kafka_headers_t *h = NULL;
    if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        h = NULL;
    }
    rd_kafka_timestamp_type_t type;
    int64_t ts = rd_kafka_message_timestamp(m, &type);
    return dq_letter_from_parts(l, m->partition, m->offset, ts, h, m->key, m->key_len, m->len);
}

void dq_letter_clear(dq_letter *l)
{
    free(l->reason);
    free(l->detail);
    free(l->source_topic);
    free(l->replayed_from);
    memset(l, 0, sizeof *l);
}

static int dq_same(const char *want, const char *have)
{
    return want == NULL || (have != NULL && strcmp(want, have) == 0);
}

int dq_letter_selected(const dq_letter *l, const char *reason, const char *topic)
{
    return dq_same(reason, l->reason) && dq_same(topic, l->source_topic);
}

int dq_letter_replayable(const dq_letter *l, char *const targets[], size_t n_targets, char *why,
                         size_t whylen)
{
    if (l->source_topic == NULL || l->source_topic[0] == '\0') {
        snprintf(why, whylen, "it has no %s header", DQ_H_TOPIC);
        return -1;
    }
    int allowed = 0;
    for (size_t i = 0; i < n_targets; i++) {
        allowed |= strcmp(targets[i], l->source_topic) == 0;
    }
    if (!allowed) {
        snprintf(why, whylen, "source topic \"%s\" is not a replay target", l->source_topic);
        return -1;
    }
    return 0;
}

void dq_letter_origin(const dq_letter *l, char *out, size_t outlen)
{
    if (l->source_topic == NULL) {
        snprintf(out, outlen, "-");
        return;
    }
    char part[16] = "?", off[24] = "?";
    if (l->source_partition >= 0) {
        snprintf(part, sizeof part, "%" PRId32, l->source_partition);
    }
    if (l->source_offset >= 0) {
        snprintf(off, sizeof off, "%" PRId64, l->source_offset);
    }
    snprintf(out, outlen, "%s:%s:%s", l->source_topic, part, off);
}

int dq_header_is_dlq(const char *name)
{
    return strncmp(name, "pw-dlq-", 7) == 0 || strncmp(name, "pw-source-", 10) == 0;
}

rd_kafka_headers_t *dq_replay_headers(const rd_kafka_headers_t *orig, int32_t dlq_partition,
                                      int64_t dlq_offset)
{
    rd_kafka_headers_t *h = rd_kafka_headers_new(8);
    if (h == NULL) {
        return NULL;
    }
    const char *name = NULL;
    const void *v = NULL;
    size_t n = 0;
    for (size_t i = 0; orig != NULL; i++) {
        if (rd_kafka_header_get_all(orig, i, &name, &v, &n) != RD_KAFKA_RESP_ERR_NO_ERROR) {
            break;
        }
        if (!dq_header_is_dlq(name)) {
            rd_kafka_header_add(h, name, -1, v, v != NULL ? (ssize_t)n : 0);
        }
    }
    char from[48];
    snprintf(from, sizeof from, "%" PRId32 ":%" PRId64, dlq_partition, dlq_offset);
    rd_kafka_header_add(h, DQ_H_REPLAYED_FROM, -1, from, -1);
    return h;
}
