/* ingest: JSON / PublishRequest → validated payloads → packed Envelopes with
 * idempotency tokens. Validation itself is pw_validate's; this file owns the
 * request-level rules (counting a JSON body before decoding it, shape, batch
 * size, all-or-nothing validation), the content digests and tokens, and the
 * envelope. */
#include "ingest.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

const char *pw_kind_name(pw_kind k)
{
    return k == PW_KIND_ALERT ? "alert" : "reading";
}

void pw_ingest_batch_init(pw_ingest_batch *b)
{
    b->msgs = NULL;
    b->n = b->cap = 0;
    b->sha = NULL;
    b->rnd_off = sizeof(b->rnd); /* empty pool */
}

void pw_ingest_batch_free(pw_ingest_batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        free(b->msgs[i].key);
        free(b->msgs[i].value);
    }
    free(b->msgs);
    EVP_MD_CTX_free(b->sha);
    pw_ingest_batch_init(b);
}

void pw_ingest_error_clear(pw_ingest_error *e)
{
    json_decref(e->details);
    memset(e, 0, sizeof(*e));
}

static pw_ingest_msg *pw_ingest_next(pw_ingest_batch *b)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 8;
        pw_ingest_msg *m = realloc(b->msgs, cap * sizeof(*m));
        if (!m) {
            return NULL;
        }
        b->msgs = m;
        b->cap = cap;
    }
    pw_ingest_msg *m = &b->msgs[b->n];
    memset(m, 0, sizeof(*m));
    return m;
}

/* A version 4 UUID from the batch's entropy pool (RFC 4122 layout). */
static int pw_ingest_random_token(pw_ingest_batch *b, char out[PW_UUID_LEN])
{
    if (b->rnd_off + 16 > sizeof(b->rnd)) {
        if (getrandom(b->rnd, sizeof(b->rnd), 0) != (ssize_t)sizeof(b->rnd)) {
            return -1;
        }
        b->rnd_off = 0;
    }
    uint8_t u[16];
    memcpy(u, b->rnd + b->rnd_off, 16);
    b->rnd_off += 16;
    u[6] = (uint8_t)((u[6] & 0x0f) | 0x40);
    u[8] = (uint8_t)((u[8] & 0x3f) | 0x80);
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) {
            out[o++] = '-';
        }
        out[o++] = hex[u[i] >> 4];
        out[o++] = hex[u[i] & 0x0f];
    }
    out[o] = '\0';
    return 0;
}

/* protobuf-c output sink that feeds the batch's SHA-256 context. */
typedef struct {
    ProtobufCBuffer base;
    EVP_MD_CTX *sha;
} pw_ingest_sha_sink;

static void pw_ingest_sha_append(ProtobufCBuffer *buf, size_t len, const uint8_t *data)
{
    pw_ingest_sha_sink *s = (pw_ingest_sha_sink *)buf;
    EVP_DigestUpdate(s->sha, data, len);
}

/* Hashes msg (packed, without unknown fields) into 32 hex digits. */
static int pw_ingest_digest(pw_ingest_batch *b, const ProtobufCMessage *msg,
                            char out[PW_INGEST_DIGEST_LEN])
{
    if (!b->sha && !(b->sha = EVP_MD_CTX_new())) {
        return -1;
    }
    if (EVP_DigestInit_ex(b->sha, EVP_sha256(), NULL) != 1) {
        return -1;
    }
    pw_ingest_sha_sink sink = {{pw_ingest_sha_append}, b->sha};
    protobuf_c_message_pack_to_buffer(msg, &sink.base);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    if (EVP_DigestFinal_ex(b->sha, md, &mdlen) != 1 || mdlen < 16) {
        return -1;
    }
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 0x0f];
    }
    out[32] = '\0';
    return 0;
}

int pw_ingest_digest_reading(pw_ingest_batch *b, const Iot__V1__Reading *r, int64_t sent_ts,
                             char out[PW_INGEST_DIGEST_LEN])
{
    Iot__V1__Reading copy = *r;
    copy.base.n_unknown_fields = 0;
    copy.base.unknown_fields = NULL;
    copy.ts_ms = sent_ts;
    return pw_ingest_digest(b, &copy.base, out);
}

int pw_ingest_digest_alert(pw_ingest_batch *b, const Iot__V1__Alert *a, int64_t sent_ts,
                           char out[PW_INGEST_DIGEST_LEN])
{
    Iot__V1__Alert copy = *a;
    copy.base.n_unknown_fields = 0;
    copy.base.unknown_fields = NULL;
    copy.ts_ms = sent_ts;
    return pw_ingest_digest(b, &copy.base, out);
}

/* The token of one item: derived from key + digest (+ stream position) and
 * occurrence when the request has a key, else random. */
static void pw_ingest_token(pw_ingest_batch *b, const pw_ingest_meta *m, pw_kind kind,
                            const char *digest, unsigned occurrence, char out[PW_UUID_LEN])
{
    if (m->idem_key) {
        char scoped[PW_MAX_ID_LEN + PW_INGEST_DIGEST_LEN + 32];
        if (m->stream_message >= 0) {
            snprintf(scoped, sizeof(scoped), "%s\x1f%s\x1fm%ld", m->idem_key, digest,
                     m->stream_message);
        } else {
            snprintf(scoped, sizeof(scoped), "%s\x1f%s", m->idem_key, digest);
        }
        pw_uuid_derive(m->consumer, scoped, pw_kind_name(kind), occurrence, out);
    } else if (pw_ingest_random_token(b, out) != 0) {
        pw_uuid_random(out);
    }
}

/* Packs env (payload already set, token from digest) into the next slot of b. */
static int pw_ingest_pack(pw_ingest_batch *b, pw_kind kind, const char *device_id,
                          Iot__V1__Envelope *env, const pw_ingest_meta *m, const char *digest,
                          unsigned index, unsigned occurrence)
{
    pw_ingest_msg *msg = pw_ingest_next(b);
    if (!msg) {
        return -1;
    }
    msg->kind = kind;
    msg->index = index;
    pw_ingest_token(b, m, kind, digest, occurrence, msg->token);
    env->token = msg->token;
    env->received_ms = m->received_ms;
    env->consumer = (char *)m->consumer;
    env->source = m->source;
    env->schema_version = PW_PRODUCER_SCHEMA_VERSION;
    msg->value_len = iot__v1__envelope__get_packed_size(env);
    msg->value = malloc(msg->value_len ? msg->value_len : 1);
    msg->key = strdup(device_id);
    if (!msg->value || !msg->key) {
        free(msg->value);
        free(msg->key);
        return -1;
    }
    iot__v1__envelope__pack(env, msg->value);
    b->n++;
    return 0;
}

static int pw_ingest_put_reading(pw_ingest_batch *b, const Iot__V1__Reading *r,
                                 const pw_ingest_meta *m, const char *digest, unsigned index,
                                 unsigned occurrence)
{
    /* Shallow copy without unknown fields: only schema fields reach Kafka. */
    Iot__V1__Reading copy = *r;
    copy.base.n_unknown_fields = 0;
    copy.base.unknown_fields = NULL;
    Iot__V1__Envelope env = IOT__V1__ENVELOPE__INIT;
    env.payload_case = IOT__V1__ENVELOPE__PAYLOAD_READING;
    env.reading = &copy;
    return pw_ingest_pack(b, PW_KIND_READING, r->device_id, &env, m, digest, index, occurrence);
}

static int pw_ingest_put_alert(pw_ingest_batch *b, const Iot__V1__Alert *a, const pw_ingest_meta *m,
                               const char *digest, unsigned index, unsigned occurrence)
{
    Iot__V1__Alert copy = *a;
    copy.base.n_unknown_fields = 0;
    copy.base.unknown_fields = NULL;
    Iot__V1__Envelope env = IOT__V1__ENVELOPE__INIT;
    env.payload_case = IOT__V1__ENVELOPE__PAYLOAD_ALERT;
    env.alert = &copy;
    return pw_ingest_pack(b, PW_KIND_ALERT, a->device_id, &env, m, digest, index, occurrence);
}

int pw_ingest_add_reading(pw_ingest_batch *b, const Iot__V1__Reading *r, int64_t sent_ts,
                          const pw_ingest_meta *m, unsigned index, unsigned occurrence)
{
    char digest[PW_INGEST_DIGEST_LEN] = "";
    if (m->idem_key && pw_ingest_digest_reading(b, r, sent_ts, digest) != 0) {
        return -1;
    }
    return pw_ingest_put_reading(b, r, m, digest, index, occurrence);
}

int pw_ingest_add_alert(pw_ingest_batch *b, const Iot__V1__Alert *a, int64_t sent_ts,
                        const pw_ingest_meta *m, unsigned index, unsigned occurrence)
{
    char digest[PW_INGEST_DIGEST_LEN] = "";
    if (m->idem_key && pw_ingest_digest_alert(b, a, sent_ts, digest) != 0) {
        return -1;
    }
    return pw_ingest_put_alert(b, a, m, digest, index, occurrence);
}

/* Counts identical items of one request (by digest) so each gets its own
 * occurrence number. Open addressing on the digest's first 64 bits; two
 * different contents sharing them only bump a number, tokens stay unique. */
#define PW_INGEST_SEEN_SLOTS 2048 /* > 2 x PW_MAX_BATCH */
typedef struct {
    uint64_t key[PW_INGEST_SEEN_SLOTS]; /* 0 = empty */
    uint16_t count[PW_INGEST_SEEN_SLOTS];
} pw_ingest_seen;

static uint64_t pw_ingest_digest_prefix(const char *digest)
{
    uint64_t k = 0;
    for (int i = 0; i < 16; i++) {
        char c = digest[i];
        k = (k << 4) | (uint64_t)(c <= '9' ? c - '0' : c - 'a' + 10);
    }
    return k | 1;
}

static unsigned pw_ingest_occurrence(pw_ingest_seen *seen, const char *digest)
{
    uint64_t k = pw_ingest_digest_prefix(digest);
    size_t i = (size_t)(k % PW_INGEST_SEEN_SLOTS);
    while (seen->key[i] && seen->key[i] != k) {
        i = (i + 1) % PW_INGEST_SEEN_SLOTS;
    }
    seen->key[i] = k;
    return seen->count[i]++;
}

/* Digest, occurrence and envelope of the index-th reading/alert of a request. */
static int pw_ingest_add_item(pw_ingest_batch *b, pw_kind kind, const void *item, int64_t sent_ts,
                              const pw_ingest_meta *m, unsigned index, pw_ingest_seen *seen)
{
    char digest[PW_INGEST_DIGEST_LEN] = "";
    unsigned occurrence = 0;
    if (m->idem_key) {
        int rc = kind == PW_KIND_READING ? pw_ingest_digest_reading(b, item, sent_ts, digest)
                                         : pw_ingest_digest_alert(b, item, sent_ts, digest);
        if (rc != 0) {
            return -1;
        }
        occurrence = pw_ingest_occurrence(seen, digest);
    }
    if (kind == PW_KIND_READING) {
        return pw_ingest_put_reading(b, item, m, digest, index, occurrence);
    }
    return pw_ingest_put_alert(b, item, m, digest, index, occurrence);
}

static void pw_ingest_fail(pw_ingest_error *e, const char *code, json_t *details, const char *fmt,
                           const char *arg)
{
    e->status = 400;
    e->code = code;
    snprintf(e->message, sizeof(e->message), fmt, arg);
    e->details = details;
}

/* Counts, without decoding, the top-level array elements of a JSON body and
 * its structural tokens ({ [ , : outside strings: at least one per value or
 * key jansson would allocate). Invalid JSON is left to jansson. */
static void pw_ingest_json_count(const char *body, size_t len, size_t *items, size_t *tokens)
{
    size_t depth = 0, commas = 0, n = 0;
    int in_string = 0, top_array = 0, top_empty = 1;
    for (size_t i = 0; i < len; i++) {
        char c = body[i];
        if (in_string) {
            if (c == '\\') {
                i++;
            } else if (c == '"') {
                in_string = 0;
            }
            continue;
        }
        if (c == '"') {
            in_string = 1;
        } else if (c == '{' || c == '[') {
            top_array |= depth == 0 && c == '[';
            depth++;
            n++;
        } else if (c == '}' || c == ']') {
            depth -= depth > 0;
        } else if (c == ',' || c == ':') {
            commas += c == ',' && depth == 1;
            n++;
        }
        if (depth == 1 && c != '[' && c != ' ' && c != '\t' && c != '\n' && c != '\r') {
            top_empty = 0;
        }
    }
    *items = top_array ? (top_empty ? 0 : commas + 1) : 1;
    *tokens = n;
}

static int pw_ingest_parse(pw_kind kind, const char *body, size_t len, pw_ingest_error *e,
                           json_t **out)
{
    size_t items, tokens;
    pw_ingest_json_count(body, len, &items, &tokens);
    if (items > PW_MAX_BATCH || tokens > PW_INGEST_MAX_JSON_TOKENS) {
        json_t *d = json_pack("[{s:s,s:s}]", "field", "items", "message",
                              items > PW_MAX_BATCH ? "at most 1000 items per request"
                                                   : "at most 32000 JSON values per request");
        pw_ingest_fail(e, "validation_failed", d, "%s",
                       items > PW_MAX_BATCH ? "too many items (at most 1000)"
                                            : "too many JSON values (at most 32000)");
        return -1;
    }
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!root) {
        json_t *d = json_pack("[{s:i,s:i,s:i,s:s}]", "line", jerr.line, "column", jerr.column,
                              "position", jerr.position, "message", jerr.text);
        pw_ingest_fail(e, "invalid_json", d, "request body is not valid JSON: %s", jerr.text);
        return -1;
    }
    if (!json_is_object(root) && !json_is_array(root)) {
        json_decref(root);
        pw_ingest_fail(e, "validation_failed", NULL,
                       "body must be one %s object or an array of them", pw_kind_name(kind));
        return -1;
    }
    size_t n = json_is_array(root) ? json_array_size(root) : 1;
    if (n == 0 || n > PW_MAX_BATCH) {
        json_decref(root);
        json_t *d = json_pack("[{s:s,s:s}]", "field", "items", "message",
                              n == 0 ? "must not be empty" : "at most 1000 items per request");
        pw_ingest_fail(e, "validation_failed", d, "%s",
                       n == 0 ? "empty array" : "too many items (at most 1000)");
        return -1;
    }
    *out = root;
    return 0;
}

/* Decoded, validated items of one request, owned until released. */
typedef struct {
    pw_kind kind;
    size_t n;
    Iot__V1__Reading *readings;
    Iot__V1__Alert *alerts;
} pw_ingest_items;

static void pw_ingest_items_free(pw_ingest_items *it)
{
    for (size_t i = 0; i < it->n; i++) {
        if (it->kind == PW_KIND_READING) {
            pw_reading_clear(&it->readings[i]);
        } else {
            pw_alert_clear(&it->alerts[i]);
        }
    }
    free(it->readings);
    free(it->alerts);
}

/* Validates every item, collecting all errors. Returns 0 if all are valid. */
static int pw_ingest_validate(json_t *root, pw_ingest_items *it, int64_t now_ms, pw_errors *errs)
{
    int is_array = json_is_array(root);
    size_t n = is_array ? json_array_size(root) : 1;
    if (it->kind == PW_KIND_READING) {
        it->readings = calloc(n, sizeof(Iot__V1__Reading));
    } else {
        it->alerts = calloc(n, sizeof(Iot__V1__Alert));
    }
    if (!it->readings && !it->alerts) {
        return -1;
    }
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        const json_t *obj = is_array ? json_array_get(root, i) : root;
        int index = is_array ? (int)i : -1;
        int rc;
        if (it->kind == PW_KIND_READING) {
            Iot__V1__Reading init = IOT__V1__READING__INIT;
            it->readings[i] = init;
            rc = pw_reading_from_json(obj, index, now_ms, &it->readings[i], errs);
        } else {
            Iot__V1__Alert init = IOT__V1__ALERT__INIT;
            it->alerts[i] = init;
            rc = pw_alert_from_json(obj, index, now_ms, &it->alerts[i], errs);
        }
        it->n = i + 1; /* cleared entries are safe to clear again */
        if (rc != 0) {
            bad = 1;
        }
    }
    return bad ? -1 : 0;
}

int pw_ingest_from_json(pw_ingest_batch *b, pw_kind kind, const char *body, size_t len,
                        const pw_ingest_meta *m, pw_ingest_error *e)
{
    json_t *root = NULL;
    memset(e, 0, sizeof(*e));
    if (pw_ingest_parse(kind, body, len, e, &root) != 0) {
        return -1;
    }
    pw_ingest_items it = {.kind = kind};
    pw_errors errs;
    pw_errors_init(&errs);
    int rc = pw_ingest_validate(root, &it, m->received_ms, &errs);
    if (rc != 0) {
        char summary[200];
        pw_errors_summary(&errs, summary, sizeof(summary));
        size_t total = errs.len;
        errs.len = total < PW_INGEST_MAX_DETAILS ? total : PW_INGEST_MAX_DETAILS;
        pw_ingest_fail(e, "validation_failed", pw_errors_to_json(&errs), "invalid %s",
                       summary[0] ? summary : "request");
        errs.len = total;
        e->details_total = total;
    } else {
        size_t start = b->n;
        pw_ingest_seen seen;
        if (m->idem_key) {
            memset(&seen, 0, sizeof(seen));
        }
        for (size_t i = 0; i < it.n && rc == 0; i++) {
            const json_t *obj = json_is_array(root) ? json_array_get(root, i) : root;
            const void *item = kind == PW_KIND_READING ? (const void *)&it.readings[i]
                                                       : (const void *)&it.alerts[i];
            int64_t ts = kind == PW_KIND_READING ? it.readings[i].ts_ms : it.alerts[i].ts_ms;
            int64_t sent_ts = json_object_get(obj, "ts") ? ts : 0;
            rc = pw_ingest_add_item(b, kind, item, sent_ts, m, (unsigned)i, &seen);
        }
        if (rc != 0) {
            pw_ingest_fail(e, "internal_error", NULL, "%s", "out of memory");
            e->status = 500;
        }
        rc = rc == 0 ? (int)(b->n - start) : -1;
    }
    pw_errors_free(&errs);
    pw_ingest_items_free(&it);
    json_decref(root);
    return rc;
}

/* "readings[2].value: must be a finite number; alerts[0].severity: …"; the
 * first PW_INGEST_MAX_DETAILS problems of both lists, then how many more. */
static void pw_ingest_describe(const pw_errors *errs, const char *list, size_t *listed, char *msg,
                               size_t msglen)
{
    size_t used = strlen(msg);
    for (size_t i = 0; i < errs->len && used + 1 < msglen && *listed < PW_INGEST_MAX_DETAILS;
         i++, (*listed)++) {
        const pw_field_error *fe = &errs->items[i];
        int w = snprintf(msg + used, msglen - used, "%s%s[%d].%s: %s", used ? "; " : "", list,
                         fe->index, fe->field, fe->message);
        if (w < 0) {
            break;
        }
        used += (size_t)w < msglen - used ? (size_t)w : msglen - used - 1;
    }
}

static int pw_ingest_check_request(const Iot__V1__PublishRequest *req, const pw_ingest_meta *m,
                                   char *msg, size_t msglen)
{
    pw_errors rerrs, aerrs;
    pw_errors_init(&rerrs);
    pw_errors_init(&aerrs);
    for (size_t i = 0; i < req->n_readings; i++) {
        pw_reading_check(req->readings[i], (int)i, m->received_ms, PW_CHECK_ZERO_TS, &rerrs);
    }
    for (size_t i = 0; i < req->n_alerts; i++) {
        pw_alert_check(req->alerts[i], (int)i, m->received_ms, PW_CHECK_ZERO_TS, &aerrs);
    }
    int rc = 0;
    if (rerrs.len || aerrs.len) {
        size_t listed = 0, total = rerrs.len + aerrs.len;
        pw_ingest_describe(&rerrs, "readings", &listed, msg, msglen);
        pw_ingest_describe(&aerrs, "alerts", &listed, msg, msglen);
        size_t used = strlen(msg);
        if (total > listed && used + 1 < msglen) {
            snprintf(msg + used, msglen - used, " (%zu problems, %zu listed)", total, listed);
        }
        rc = -1;
    }
    pw_errors_free(&rerrs);
    pw_errors_free(&aerrs);
    return rc;
}

int pw_ingest_from_request(pw_ingest_batch *b, Iot__V1__PublishRequest *req,
                           const pw_ingest_meta *m, char *msg, size_t msglen)
{
    msg[0] = '\0';
    size_t total = req->n_readings + req->n_alerts;
    if (total == 0) {
        snprintf(msg, msglen, "readings/alerts: request carries no readings or alerts");
        return -1;
    }
    if (total > PW_MAX_BATCH) {
        snprintf(msg, msglen, "readings/alerts: at most %d messages per request", PW_MAX_BATCH);
        return -1;
    }
    if (pw_ingest_check_request(req, m, msg, msglen) != 0) {
        return -1;
    }
    size_t start = b->n;
    pw_ingest_seen seen;
    if (m->idem_key) {
        memset(&seen, 0, sizeof(seen));
    }
    int rc = 0;
    for (size_t i = 0; i < req->n_readings && rc == 0; i++) {
        Iot__V1__Reading *r = req->readings[i];
        int64_t sent_ts = r->ts_ms;
        if (r->ts_ms == 0) {
            r->ts_ms = m->received_ms;
        }
        rc = pw_ingest_add_item(b, PW_KIND_READING, r, sent_ts, m, (unsigned)i, &seen);
    }
    for (size_t i = 0; i < req->n_alerts && rc == 0; i++) {
        Iot__V1__Alert *a = req->alerts[i];
        int64_t sent_ts = a->ts_ms;
        if (a->ts_ms == 0) {
            a->ts_ms = m->received_ms;
        }
        rc = pw_ingest_add_item(b, PW_KIND_ALERT, a, sent_ts, m, (unsigned)i, &seen);
    }
    if (rc != 0) {
        snprintf(msg, msglen, "out of memory");
        return -1;
    }
    return (int)(b->n - start);
}
