/* Unit tests for the producer's ingest path: JSON bodies and PublishRequests
 * to packed Envelopes, all-or-nothing validation, error codes and tokens. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ingest.h"
#include "pw_time.h"

#define TS_OFFSET_MS 60000LL /* a fixed ts one minute before receipt */

static pw_ingest_meta meta_with(const char *key)
{
    pw_ingest_meta m = {.consumer = "sensor-a",
                        .idem_key = key,
                        .stream_message = -1,
                        .source = IOT__V1__SOURCE__SOURCE_REST,
                        .received_ms = pw_now_ms()};
    return m;
}

static const char *READING =
    "{\"device_id\":\"dev-1\",\"zone\":\"north\",\"type\":\"temperature\",\"value\":21.5,"
    "\"unit\":\"C\",\"firmware\":\"1.2.3\"}";

static int run_json(pw_ingest_batch *b, pw_kind kind, const char *body, const char *key,
                    pw_ingest_error *e)
{
    pw_ingest_meta m = meta_with(key);
    return pw_ingest_from_json(b, kind, body, strlen(body), &m, e);
}

static Iot__V1__Envelope *decode(const pw_ingest_msg *m)
{
    Iot__V1__Envelope *env = iot__v1__envelope__unpack(NULL, m->value_len, m->value);
    assert_non_null(env);
    return env;
}

static void test_single_reading_envelope(void **state)
{
    (void)state;
    pw_ingest_batch b;
    pw_ingest_batch_init(&b);
    pw_ingest_error e;
    int64_t before = pw_now_ms();
    assert_int_equal(run_json(&b, PW_KIND_READING, READING, NULL, &e), 1);
    assert_int_equal(b.n, 1);
    assert_string_equal(b.msgs[0].key, "dev-1");
    assert_int_equal(strlen(b.msgs[0].token), 36);
    Iot__V1__Envelope *env = decode(&b.msgs[0]);
    assert_string_equal(env->token, b.msgs[0].token);
    assert_string_equal(env->consumer, "sensor-a");
    assert_int_equal(env->source, IOT__V1__SOURCE__SOURCE_REST);
    assert_int_equal(env->schema_version, 1);
    assert_int_equal(env->payload_case, IOT__V1__ENVELOPE__PAYLOAD_READING);
    assert_string_equal(env->reading->zone, "north");
    assert_string_equal(env->reading->type, "temperature");
    assert_true(env->reading->value == 21.5);
    /* no ts: receive time */
    assert_true(env->reading->ts_ms >= before - 1000 && env->reading->ts_ms <= pw_now_ms());
    assert_true(env->received_ms >= before - 1000);
    iot__v1__envelope__free_unpacked(env, NULL);
    pw_ingest_batch_free(&b);
}

static void test_alert_envelope(void **state)
{
    (void)state;
    pw_ingest_batch b;
    pw_ingest_batch_init(&b);
    pw_ingest_error e;
    const char *body = "[{\"device_id\":\"dev-9\",\"zone\":\"south\",\"severity\":\"critical\","
                       "\"code\":\"OVERHEAT\",\"message\":\"too hot\",\"firmware\":\"2.0\"}]";
    assert_int_equal(run_json(&b, PW_KIND_ALERT, body, NULL, &e), 1);
    assert_int_equal(b.msgs[0].kind, PW_KIND_ALERT);
    Iot__V1__Envelope *env = decode(&b.msgs[0]);
    assert_int_equal(env->payload_case, IOT__V1__ENVELOPE__PAYLOAD_ALERT);
    assert_int_equal(env->alert->severity, IOT__V1__SEVERITY__SEVERITY_CRITICAL);
    assert_string_equal(env->alert->code, "OVERHEAT");
    iot__v1__envelope__free_unpacked(env, NULL);
    pw_ingest_batch_free(&b);
}

static char *make_array(size_t n)
{
    size_t one = strlen(READING);
    char *s = malloc(n * (one + 1) + 3);
    size_t off = 0;
    s[off++] = '[';
    for (size_t i = 0; i < n; i++) {
        if (i) {
            s[off++] = ',';
        }
        memcpy(s + off, READING, one);
        off += one;
    }
    s[off++] = ']';
    s[off] = '\0';
    return s;
}

static void test_batch_limits(void **state)
{
    (void)state;
    pw_ingest_batch b;
    pw_ingest_error e;
    char *full = make_array(PW_MAX_BATCH);
    pw_ingest_batch_init(&b);
    assert_int_equal(run_json(&b, PW_KIND_READING, full, NULL, &e), PW_MAX_BATCH);
    /* random tokens: distinct, RFC 4122 version 4 */
    for (size_t i = 0; i < b.n; i++) {
        const char *t = b.msgs[i].token;
        assert_int_equal(strlen(t), 36);
        assert_true(t[8] == '-' && t[13] == '-' && t[18] == '-' && t[23] == '-');
        assert_int_equal(t[14], '4');
        assert_non_null(strchr("89ab", t[19]));
        if (i) {
            assert_string_not_equal(t, b.msgs[i - 1].token);
        }
    }
    pw_ingest_batch_free(&b);
    free(full);

    char *over = make_array(PW_MAX_BATCH + 1);
    pw_ingest_batch_init(&b);
    assert_int_equal(run_json(&b, PW_KIND_READING, over, NULL, &e), -1);
    assert_int_equal(e.status, 400);
    assert_string_equal(e.code, "validation_failed");
    assert_int_equal(b.n, 0);
    pw_ingest_error_clear(&e);
    free(over);

    assert_int_equal(run_json(&b, PW_KIND_READING, "[]", NULL, &e), -1);
    assert_string_equal(e.code, "validation_failed");
    assert_non_null(strstr(e.message, "empty"));
    pw_ingest_error_clear(&e);
    pw_ingest_batch_free(&b);
}

static void test_all_or_nothing_names_every_bad_item(void **state)
{
    (void)state;
    pw_ingest_batch b;
    pw_ingest_batch_init(&b);
    pw_ingest_error e;
    const char *body = "[{\"device_id\":\"d\",\"zone\":\"z\",\"type\":\"temperature\",\"value\":1,"
                       "\"unit\":\"C\"},"
                       "{\"device_id\":\"d\",\"zone\":\"z\",\"type\":\"temperature\",\"value\":"
                       "\"hot\",\"unit\":\"C\"},"
                       "7,"
                       "{\"device_id\":\"\",\"zone\":\"z\",\"type\":\"temperature\",\"value\":2,"
                       "\"unit\":\"C\"}]";
    assert_int_equal(run_json(&b, PW_KIND_READING, body, NULL, &e), -1);
    assert_int_equal(e.status, 400);
    assert_string_equal(e.code, "validation_failed");
    assert_int_equal(b.n, 0);
    assert_true(json_is_array(e.details));
    int seen[4] = {0};
    size_t i;
    json_t *d;
    json_array_foreach(e.details, i, d)
    {
        json_int_t idx = json_integer_value(json_object_get(d, "index"));
        assert_true(idx >= 1 && idx <= 3);
        seen[idx] = 1;
    }
    assert_int_equal(seen[0], 0);
    assert_int_equal(seen[1] + seen[2] + seen[3], 3);
    pw_ingest_error_clear(&e);
    pw_ingest_batch_free(&b);
}

static void test_invalid_json_codes(void **state)
{
    (void)state;
    pw_ingest_batch b;
    pw_ingest_batch_init(&b);
    pw_ingest_error e;
    const char *broken[] = {"{",
                            "",
                            "{\"a\":1,\"a\":2}",
                            "[1,]",
                            "{\"value\":NaN}",
                            "{\"value\":1e999}",
                            "\xff\xfe",
                            "{\"device_id\":\"\xc3\x28\"}"};
    for (size_t k = 0; k < sizeof(broken) / sizeof(broken[0]); k++) {
        assert_int_equal(run_json(&b, PW_KIND_READING, broken[k], NULL, &e), -1);
        assert_int_equal(e.status, 400);
        assert_string_equal(e.code, "invalid_json");
        json_t *d0 = json_array_get(e.details, 0);
        assert_non_null(json_object_get(d0, "line"));
        assert_non_null(json_object_get(d0, "column"));
        pw_ingest_error_clear(&e);
    }
    assert_int_equal(run_json(&b, PW_KIND_READING, "\"just a string\"", NULL, &e), -1);
    assert_string_equal(e.code, "validation_failed");
    pw_ingest_error_clear(&e);
    assert_int_equal(b.n, 0);
    pw_ingest_batch_free(&b);
}

static void test_idempotency_tokens_are_deterministic(void **state)
{
    (void)state;
    pw_ingest_batch a, b, c;
    pw_ingest_error e;
    const char *body = "[{\"device_id\":\"d1\",\"zone\":\"z\",\"type\":\"temperature\",\"value\":1,"
                       "\"unit\":\"C\"},{\"device_id\":\"d2\",\"zone\":\"z\",\"type\":"
                       "\"temperature\",\"value\":2,\"unit\":\"C\"}]";
    pw_ingest_batch_init(&a);
    pw_ingest_batch_init(&b);
    pw_ingest_batch_init(&c);
    assert_int_equal(run_json(&a, PW_KIND_READING, body, "retry-42", &e), 2);
    assert_int_equal(run_json(&b, PW_KIND_READING, body, "retry-42", &e), 2);
    assert_int_equal(run_json(&c, PW_KIND_READING, body, "retry-43", &e), 2);
    assert_string_equal(a.msgs[0].token, b.msgs[0].token);
    assert_string_equal(a.msgs[1].token, b.msgs[1].token);
    assert_string_not_equal(a.msgs[0].token, a.msgs[1].token);
    assert_string_not_equal(a.msgs[0].token, c.msgs[0].token);
    char expect[PW_UUID_LEN], digest[PW_INGEST_DIGEST_LEN], scoped[200];
    Iot__V1__Reading d2 = IOT__V1__READING__INIT;
    d2.device_id = "d2";
    d2.zone = "z";
    d2.type = "temperature";
    d2.value = 2;
    d2.unit = "C";
    assert_int_equal(pw_ingest_digest_reading(&a, &d2, 0, digest), 0);
    snprintf(scoped, sizeof(scoped), "retry-42\x1f%s", digest);
    pw_uuid_derive("sensor-a", scoped, "reading", 0, expect);
    assert_string_equal(a.msgs[1].token, expect);
    assert_int_equal(a.msgs[1].index, 1);
    pw_ingest_batch_free(&a);
    pw_ingest_batch_free(&b);
    pw_ingest_batch_free(&c);
}

static Iot__V1__Reading *new_reading(const char *dev, double v, int64_t ts)
{
    Iot__V1__Reading *r = malloc(sizeof(*r));
    iot__v1__reading__init(r);
    r->device_id = strdup(dev);
    r->zone = strdup("east");
    r->type = strdup("pressure");
    r->unit = strdup("hPa");
    r->firmware = strdup("1.0");
    r->value = v;
    r->ts_ms = ts;
    return r;
}

static Iot__V1__PublishRequest *roundtrip(Iot__V1__PublishRequest *req)
{
    size_t len = iot__v1__publish_request__get_packed_size(req);
    uint8_t *buf = malloc(len + 1);
    iot__v1__publish_request__pack(req, buf);
    Iot__V1__PublishRequest *out = iot__v1__publish_request__unpack(NULL, len, buf);
    free(buf);
    return out;
}

static void free_built(Iot__V1__PublishRequest *req)
{
    for (size_t i = 0; i < req->n_readings; i++) {
        Iot__V1__Reading *r = req->readings[i];
        free(r->device_id), free(r->zone), free(r->type), free(r->unit), free(r->firmware);
        free(r);
    }
    free(req->readings);
}

static void test_publish_request(void **state)
{
    (void)state;
    Iot__V1__PublishRequest built = IOT__V1__PUBLISH_REQUEST__INIT;
    Iot__V1__Reading *rs[2] = {new_reading("g1", 1013.0, 0),
                               new_reading("g2", 990.5, pw_now_ms() - TS_OFFSET_MS)};
    built.n_readings = 2;
    built.readings = malloc(sizeof(rs));
    memcpy(built.readings, rs, sizeof(rs));
    Iot__V1__PublishRequest *req = roundtrip(&built);
    pw_ingest_meta m = meta_with(NULL);
    m.source = IOT__V1__SOURCE__SOURCE_GRPC;
    pw_ingest_batch b;
    pw_ingest_batch_init(&b);
    char msg[256];
    int n = pw_ingest_from_request(&b, req, &m, msg, sizeof(msg));
    assert_int_equal(n, 2);
    Iot__V1__Envelope *env = decode(&b.msgs[0]);
    assert_int_equal(env->source, IOT__V1__SOURCE__SOURCE_GRPC);
    assert_int_equal(env->reading->ts_ms, m.received_ms); /* ts 0 filled */
    iot__v1__envelope__free_unpacked(env, NULL);
    env = decode(&b.msgs[1]);
    assert_int_equal(env->reading->ts_ms, built.readings[1]->ts_ms);
    iot__v1__envelope__free_unpacked(env, NULL);
    pw_ingest_batch_free(&b);
    iot__v1__publish_request__free_unpacked(req, NULL);

    /* a bad value is named by list, index and field; nothing is packed */
    built.readings[1]->value = 0.0 / 0.0;
    req = roundtrip(&built);
    pw_ingest_batch_init(&b);
    assert_int_equal(pw_ingest_from_request(&b, req, &m, msg, sizeof(msg)), -1);
    assert_non_null(strstr(msg, "readings[1].value"));
    assert_int_equal(b.n, 0);
    iot__v1__publish_request__free_unpacked(req, NULL);

    Iot__V1__PublishRequest empty = IOT__V1__PUBLISH_REQUEST__INIT;
    assert_int_equal(pw_ingest_from_request(&b, &empty, &m, msg, sizeof(msg)), -1);
    assert_non_null(strstr(msg, "no readings"));
    free_built(&built);
    pw_ingest_batch_free(&b);
}

/* With the call's metadata key, a stream message's position scopes its tokens. */
static void test_publish_request_stream_scope(void **state)
{
    (void)state;
    Iot__V1__PublishRequest req = IOT__V1__PUBLISH_REQUEST__INIT;
    Iot__V1__Reading *rs[1] = {new_reading("g1", 5.0, 0)};
    req.n_readings = 1;
    req.readings = malloc(sizeof(rs));
    req.readings[0] = rs[0];
    pw_ingest_meta m = meta_with("stream-key");
    pw_ingest_batch b;
    pw_ingest_batch_init(&b);
    char msg[128];
    m.stream_message = 7;
    assert_int_equal(pw_ingest_from_request(&b, &req, &m, msg, sizeof(msg)), 1);
    req.readings[0]->ts_ms = 0; /* as sent */
    m.stream_message = 8;
    assert_int_equal(pw_ingest_from_request(&b, &req, &m, msg, sizeof(msg)), 1);
    char digest[PW_INGEST_DIGEST_LEN], scoped[200], expect[PW_UUID_LEN];
    assert_int_equal(pw_ingest_digest_reading(&b, rs[0], 0, digest), 0);
    snprintf(scoped, sizeof(scoped), "stream-key\x1f%s\x1fm7", digest);
    pw_uuid_derive("sensor-a", scoped, "reading", 0, expect);
    assert_string_equal(b.msgs[0].token, expect);
    assert_string_not_equal(b.msgs[0].token, b.msgs[1].token);
    pw_ingest_batch_free(&b);
    free_built(&req);
}

static const char *ITEM_A = "{\"device_id\":\"a\",\"zone\":\"z\",\"type\":\"t\",\"value\":1}";
static const char *ITEM_B = "{\"device_id\":\"b\",\"zone\":\"z\",\"type\":\"t\",\"value\":2}";
static const char *ITEM_A2 = "{\"device_id\":\"a\",\"zone\":\"z\",\"type\":\"t\",\"value\":1.5}";

static void tokens_of(const char *body, const char *key, char out[][PW_UUID_LEN], size_t n)
{
    pw_ingest_batch b;
    pw_ingest_error e;
    pw_ingest_batch_init(&b);
    assert_int_equal(run_json(&b, PW_KIND_READING, body, key, &e), (int)n);
    for (size_t i = 0; i < n; i++) {
        memcpy(out[i], b.msgs[i].token, PW_UUID_LEN);
    }
    pw_ingest_batch_free(&b);
}

/* Same key: an item keeps its token wherever it sits (a retry of only the
 * rest matches), different content gets a new token (never dropped), and
 * identical items of one request stay distinct. */
static void test_tokens_follow_content(void **state)
{
    (void)state;
    char ab[2][PW_UUID_LEN], b_only[1][PW_UUID_LEN], a2[1][PW_UUID_LEN], aa[2][PW_UUID_LEN];
    char body[512];
    snprintf(body, sizeof(body), "[%s,%s]", ITEM_A, ITEM_B);
    tokens_of(body, "k1", ab, 2);
    snprintf(body, sizeof(body), "[%s]", ITEM_B);
    tokens_of(body, "k1", b_only, 1);
    assert_string_equal(ab[1], b_only[0]); /* position-independent */
    snprintf(body, sizeof(body), "[%s]", ITEM_A2);
    tokens_of(body, "k1", a2, 1);
    assert_string_not_equal(ab[0], a2[0]); /* different body, new token */
    snprintf(body, sizeof(body), "[%s,%s]", ITEM_A, ITEM_A);
    tokens_of(body, "k1", aa, 2);
    assert_string_equal(aa[0], ab[0]);
    assert_string_not_equal(aa[0], aa[1]); /* identical items: by occurrence */
    /* a retry without ts matches although the receive time differs */
    char t1[1][PW_UUID_LEN], t2[1][PW_UUID_LEN];
    tokens_of(ITEM_A, "k2", t1, 1);
    tokens_of(ITEM_A, "k2", t2, 1);
    assert_string_equal(t1[0], t2[0]);
}

/* An error answer lists at most PW_INGEST_MAX_DETAILS problems and their total. */
static void test_error_details_are_capped(void **state)
{
    (void)state;
    char *body = malloc(64 * 1000 + 8);
    size_t off = 0;
    body[off++] = '[';
    for (int i = 0; i < 1000; i++) {
        off += (size_t)sprintf(body + off, "%s{\"value\":\"x\",\"extra%d\":1}", i ? "," : "", i);
    }
    body[off++] = ']';
    body[off] = '\0';
    pw_ingest_batch b;
    pw_ingest_error e;
    pw_ingest_batch_init(&b);
    assert_int_equal(run_json(&b, PW_KIND_READING, body, NULL, &e), -1);
    assert_int_equal(json_array_size(e.details), PW_INGEST_MAX_DETAILS);
    assert_true(e.details_total >= 1000);
    pw_ingest_error_clear(&e);
    pw_ingest_batch_free(&b);
    free(body);

    Iot__V1__PublishRequest req = IOT__V1__PUBLISH_REQUEST__INIT;
    req.n_readings = 50;
    req.readings = calloc(50, sizeof(*req.readings));
    for (size_t i = 0; i < 50; i++) {
        req.readings[i] = new_reading("", 1.0, 0); /* empty device_id: invalid */
    }
    pw_ingest_meta m = meta_with(NULL);
    char msg[4096];
    pw_ingest_batch_init(&b);
    assert_int_equal(pw_ingest_from_request(&b, &req, &m, msg, sizeof(msg)), -1);
    assert_non_null(strstr(msg, "readings[19].device_id"));
    assert_null(strstr(msg, "readings[20].device_id"));
    assert_non_null(strstr(msg, "(50 problems, 20 listed)"));
    pw_ingest_batch_free(&b);
    free_built(&req);
}

/* Unknown fields a client sends are not forwarded into Kafka. */
static void test_unknown_fields_are_dropped(void **state)
{
    (void)state;
    Iot__V1__Reading *r = new_reading("u1", 3.0, 0);
    size_t rlen = iot__v1__reading__get_packed_size(r);
    uint8_t buf[256];
    buf[0] = 0x0a; /* PublishRequest.readings, length-delimited */
    buf[1] = (uint8_t)(rlen + 2);
    iot__v1__reading__pack(r, buf + 2);
    buf[2 + rlen] = 0x78; /* field 15, varint: unknown to the schema */
    buf[3 + rlen] = 0x01;
    Iot__V1__PublishRequest *req = iot__v1__publish_request__unpack(NULL, rlen + 4, buf);
    assert_non_null(req);
    assert_int_equal(req->readings[0]->base.n_unknown_fields, 1);
    pw_ingest_meta m = meta_with(NULL);
    pw_ingest_batch b;
    pw_ingest_batch_init(&b);
    char msg[128];
    assert_int_equal(pw_ingest_from_request(&b, req, &m, msg, sizeof(msg)), 1);
    Iot__V1__Envelope *env = decode(&b.msgs[0]);
    assert_int_equal(env->reading->base.n_unknown_fields, 0);
    assert_string_equal(env->reading->device_id, "u1");
    iot__v1__envelope__free_unpacked(env, NULL);
    pw_ingest_batch_free(&b);
    iot__v1__publish_request__free_unpacked(req, NULL);
    free(r->device_id), free(r->zone), free(r->type), free(r->unit), free(r->firmware);
    free(r);
}

static char *repeat_body(const char *open, const char *unit, size_t n, const char *close)
{
    size_t ul = strlen(unit);
    char *b = malloc(strlen(open) + n * (ul + 1) + strlen(close) + 1);
    size_t o = 0;
    memcpy(b, open, strlen(open));
    o += strlen(open);
    for (size_t i = 0; i < n; i++) {
        if (i) {
            b[o++] = ',';
        }
        memcpy(b + o, unit, ul);
        o += ul;
    }
    strcpy(b + o, close);
    return b;
}

static const char *json_refusal(const char *body)
{
    static char msg[512];
    pw_ingest_batch b;
    pw_ingest_error e;
    pw_ingest_batch_init(&b);
    assert_int_equal(run_json(&b, PW_KIND_READING, body, NULL, &e), -1);
    assert_int_equal(e.status, 400);
    snprintf(msg, sizeof(msg), "%s: %s", e.code, e.message);
    pw_ingest_error_clear(&e);
    pw_ingest_batch_free(&b);
    return msg;
}

/* The JSON body is counted before jansson decodes it: more than 1000 items
 * or 32000 structural tokens are refused without building the tree. */
static void test_json_counted_before_decoding(void **state)
{
    (void)state;
    char *b = repeat_body("[", "{}", 1001, "]");
    assert_string_equal(json_refusal(b), "validation_failed: too many items (at most 1000)");
    free(b);
    b = repeat_body("[", "{}", 1000, "]"); /* 1000 items pass the count */
    assert_non_null(strstr(json_refusal(b), "validation_failed: invalid items[0]"));
    free(b);
    b = repeat_body(" [ ", "[[[]]]", 1000, "] "); /* 1000 items, 4000 tokens */
    assert_null(strstr(json_refusal(b), "too many"));
    free(b);
    b = repeat_body("[{\"a\":[", "0", 32000, "]}]");
    assert_string_equal(json_refusal(b), "validation_failed: too many JSON values (at most 32000)");
    free(b);
    /* commas, colons and brackets inside strings (escaped quotes too) do not count */
    b = repeat_body("{\"device_id\":\"\\\"", ",:[{", 20000, "\"}");
    assert_null(strstr(json_refusal(b), "too many"));
    free(b);
    /* 1 MiB of "{}," (~80 MiB once decoded) is refused by the count */
    b = repeat_body("[", "{}", 349000, "]");
    assert_string_equal(json_refusal(b), "validation_failed: too many items (at most 1000)");
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_reading_envelope),
        cmocka_unit_test(test_alert_envelope),
        cmocka_unit_test(test_batch_limits),
        cmocka_unit_test(test_all_or_nothing_names_every_bad_item),
        cmocka_unit_test(test_invalid_json_codes),
        cmocka_unit_test(test_idempotency_tokens_are_deterministic),
        cmocka_unit_test(test_publish_request),
        cmocka_unit_test(test_publish_request_stream_scope),
        cmocka_unit_test(test_tokens_follow_content),
        cmocka_unit_test(test_error_details_are_capped),
        cmocka_unit_test(test_json_counted_before_decoding),
        cmocka_unit_test(test_unknown_fields_are_dropped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
