/* Unit tests for pw_store's functions that need no server: the shape of a
 * query filter, packing a protobuf message into a BSON binary field of
 * subtype 0x80 (length prefix + zlib stream, checked against zlib directly)
 * and unpacking it (round trip; subtype 0 still read; absent, non-binary,
 * short, oversized, mis-sized, corrupt and undecodable fields; messages
 * above PW_STORE_PACKED_MAX refused), the query-plan check being a no-op
 * when disabled (and logging each shape once when enabled, against a server
 * that is not there), and the client URI from the environment. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "iot/v1/storage.pb-c.h"
#include "pw_log.h"
#include "pw_store.h"

/* ---- filter shapes ------------------------------------------------------------- */

static void assert_shape(const bson_t *filter, const char *want)
{
    char out[256];
    memset(out, 'X', sizeof(out));
    pw_store_filter_shape(filter, out, sizeof(out));
    assert_string_equal(out, want);
}

static void test_filter_shape(void **state)
{
    (void)state;
    bson_t *f = BCON_NEW("_id", "x", "_v", BCON_INT64(3));
    assert_shape(f, "{_id,_v}");
    bson_destroy(f);

    f = BCON_NEW("ts", "{", "$lt", BCON_DATE_TIME(1795600800000LL), "}");
    assert_shape(f, "{ts:$lt}");
    bson_destroy(f);

    /* several operators of one field, in order, then the next field */
    f = BCON_NEW("ts", "{", "$gte", BCON_INT64(1), "$lt", BCON_INT64(2), "}", "tp", "t:0");
    assert_shape(f, "{ts:$gte:$lt,tp}");
    bson_destroy(f);

    /* an embedded document that is no operator document: the field alone */
    f = BCON_NEW("meta", "{", "device", "d1", "}");
    assert_shape(f, "{meta}");
    bson_destroy(f);
    /* mixed: only the operators */
    f = BCON_NEW("a", "{", "$exists", BCON_BOOL(true), "x", BCON_INT32(1), "}");
    assert_shape(f, "{a:$exists}");
    bson_destroy(f);

    /* values are never part of the shape */
    f = BCON_NEW("_id", "{", "$in", "[", "a", "b", "c", "]", "}");
    assert_shape(f, "{_id:$in}");
    bson_destroy(f);
    f = BCON_NEW("_id", "{", "$in", "[", "other", "]", "}");
    assert_shape(f, "{_id:$in}");
    bson_destroy(f);

    /* an array (not a document) is not looked into */
    f = BCON_NEW("$or", "[", "{", "a", BCON_INT32(1), "}", "{", "b", BCON_INT32(2), "}", "]");
    assert_shape(f, "{$or}");
    bson_destroy(f);

    /* empty and absent filters */
    bson_t empty = BSON_INITIALIZER;
    assert_shape(&empty, "{}");
    bson_destroy(&empty);
    assert_shape(NULL, "{}");
}

static void test_filter_shape_truncates_within_outlen(void **state)
{
    (void)state;
    bson_t *f = BCON_NEW("_id", "x", "_v", BCON_INT64(3));
    char out[16];
    for (size_t outlen = 1; outlen <= 9; outlen++) {
        memset(out, 'X', sizeof(out));
        pw_store_filter_shape(f, out, outlen);
        /* the longest prefix of "{_id,_v}" that fits, terminated */
        assert_int_equal(strlen(out), outlen - 1);
        assert_memory_equal(out, "{_id,_v}", outlen - 1);
        for (size_t i = outlen; i < sizeof(out); i++) {
            assert_int_equal(out[i], 'X'); /* nothing written past outlen */
        }
    }
    bson_destroy(f);
}

/* ---- packed state -------------------------------------------------------------------- */

/* The binary field `field` of doc (it must be one). */
static void binary_of(const bson_t *doc, const char *field, bson_subtype_t *sub, uint32_t *len,
                      const uint8_t **data)
{
    bson_iter_t it;
    assert_true(bson_iter_init_find(&it, doc, field));
    assert_true(BSON_ITER_HOLDS_BINARY(&it));
    bson_iter_binary(&it, sub, len, data);
}

/* m packed with protobuf-c (caller frees). */
static uint8_t *packed_of(const ProtobufCMessage *m, size_t *len)
{
    *len = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(*len ? *len : 1);
    assert_non_null(buf);
    assert_int_equal(protobuf_c_message_pack(m, buf), *len);
    return buf;
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Asserts that field `field` of doc is what pw_store_append_packed must write
 * for m: subtype 0x80, the packed length as a little-endian uint32, then a
 * zlib stream (the whole rest) that inflates to protobuf_c_message_pack's
 * bytes — those of compress2 at level 1. Returns the binary's length. */
static uint32_t assert_deflated_field(const bson_t *doc, const char *field,
                                      const ProtobufCMessage *m)
{
    size_t want_len = 0;
    uint8_t *want = packed_of(m, &want_len);
    bson_subtype_t sub;
    uint32_t len = 0;
    const uint8_t *data = NULL;
    binary_of(doc, field, &sub, &len, &data);
    assert_int_equal(sub, PW_STORE_SUBTYPE_DEFLATED);
    assert_int_equal(PW_STORE_SUBTYPE_DEFLATED, 0x80);
    assert_true(len > 4);
    assert_int_equal(le32(data), want_len);

    uLongf got = want_len + 16; /* room for more: the stream must stop at want_len */
    uLong zlen = len - 4;
    uint8_t *raw = malloc(got);
    assert_non_null(raw);
    assert_int_equal(uncompress2(raw, &got, data + 4, &zlen), Z_OK);
    assert_int_equal(got, want_len);
    assert_int_equal(zlen, len - 4); /* the stream is all of the rest */
    assert_memory_equal(raw, want, want_len);
    free(raw);

    uLongf blen = compressBound(want_len);
    uint8_t *z = malloc(blen);
    assert_non_null(z);
    assert_int_equal(compress2(z, &blen, want, want_len, 1), Z_OK);
    assert_int_equal(blen, len - 4);
    assert_memory_equal(z, data + 4, blen);
    free(z);
    free(want);
    return len;
}

/* A binary of subtype 0x80: `stated` as the length prefix, then raw deflated
 * (the first keep bytes of the stream; all of it when keep is SIZE_MAX). */
static void append_deflated(bson_t *doc, const char *field, uint32_t stated, const uint8_t *raw,
                            size_t n, size_t keep)
{
    uLongf zlen = compressBound(n);
    uint8_t *out = malloc(4 + zlen);
    assert_non_null(out);
    for (int i = 0; i < 4; i++) {
        out[i] = (uint8_t)(stated >> (8 * i));
    }
    assert_int_equal(compress2(out + 4, &zlen, raw, n, 1), Z_OK);
    if (keep < zlen) {
        zlen = keep;
    }
    assert_true(
        bson_append_binary(doc, field, -1, PW_STORE_SUBTYPE_DEFLATED, out, (uint32_t)(4 + zlen)));
    free(out);
}

/* Asserts that pw_store_unpack rejects field of doc as undecodable. */
static void assert_rejected(const bson_t *doc, const char *field,
                            const ProtobufCMessageDescriptor *d)
{
    int bad = 0;
    ProtobufCMessage *m = pw_store_unpack(doc, field, d, &bad);
    if (m != NULL) {
        protobuf_c_message_free_unpacked(m, NULL);
        fail_msg("field %s was accepted", field);
    }
    assert_int_equal(bad, 1);
    bad = 1; /* a rejection never clears *bad */
    assert_null(pw_store_unpack(doc, field, d, &bad));
    assert_int_equal(bad, 1);
}

static char *census_ids[] = {"dev-1", "dev-2", "dev-3"};
static char *census_zones[] = {"zone-a", "zone-b"};
static char *census_firmwares[] = {"", "1.2.3"};
static uint32_t census_zone[] = {1, 0, 1};
static uint32_t census_firmware[] = {1, 1, 0};
static int64_t census_delta[] = {1795600800000LL, 0, 250};
static int64_t census_seen_for[] = {100000, 0, -5};

/* A columnar census of three entries (the second's last seen equals the first's). */
static Iot__V1__DeviceCensus census_message(void)
{
    Iot__V1__DeviceCensus m = IOT__V1__DEVICE_CENSUS__INIT;
    m.n_device_ids = 3;
    m.device_ids = census_ids;
    m.n_zones = 2;
    m.zones = census_zones;
    m.n_firmwares = 2;
    m.firmwares = census_firmwares;
    m.n_zone = 3;
    m.zone = census_zone;
    m.n_firmware = 3;
    m.firmware = census_firmware;
    m.n_last_seen_delta_ms = 3;
    m.last_seen_delta_ms = census_delta;
    m.n_seen_for_ms = 3;
    m.seen_for_ms = census_seen_for;
    return m;
}

static void assert_census_message(const Iot__V1__DeviceCensus *back)
{
    assert_int_equal(back->n_device_ids, 3);
    assert_int_equal(back->n_zones, 2);
    assert_int_equal(back->n_firmwares, 2);
    assert_int_equal(back->n_zone, 3);
    assert_int_equal(back->n_firmware, 3);
    assert_int_equal(back->n_last_seen_delta_ms, 3);
    assert_int_equal(back->n_seen_for_ms, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_string_equal(back->device_ids[i], census_ids[i]);
        assert_int_equal(back->zone[i], census_zone[i]);
        assert_int_equal(back->firmware[i], census_firmware[i]);
        assert_int_equal(back->last_seen_delta_ms[i], census_delta[i]);
        assert_int_equal(back->seen_for_ms[i], census_seen_for[i]);
    }
    for (size_t i = 0; i < 2; i++) {
        assert_string_equal(back->zones[i], census_zones[i]);
        assert_string_equal(back->firmwares[i], census_firmwares[i]);
    }
}

static void test_packed_round_trip(void **state)
{
    (void)state;
    Iot__V1__DeviceCensus m = census_message();
    bson_t doc = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&doc, "_id", "x");
    assert_int_equal(pw_store_append_packed(&doc, "state", &m.base), 0);
    assert_int_equal(bson_count_keys(&doc), 2);
    /* subtype 0x80: length prefix, then the deflated message */
    assert_deflated_field(&doc, "state", &m.base);

    int bad = 0;
    Iot__V1__DeviceCensus *back = (Iot__V1__DeviceCensus *)pw_store_unpack(
        &doc, "state", &iot__v1__device_census__descriptor, &bad);
    assert_non_null(back);
    assert_int_equal(bad, 0);
    assert_census_message(back);
    protobuf_c_message_free_unpacked(&back->base, NULL);

    /* an empty message: length 0, a stream that inflates to nothing */
    Iot__V1__RollupState empty = IOT__V1__ROLLUP_STATE__INIT;
    assert_int_equal(pw_store_append_packed(&doc, "empty", &empty.base), 0);
    assert_deflated_field(&doc, "empty", &empty.base);
    Iot__V1__RollupState *e = (Iot__V1__RollupState *)pw_store_unpack(
        &doc, "empty", &iot__v1__rollup_state__descriptor, &bad);
    assert_non_null(e);
    assert_int_equal(bad, 0);
    assert_int_equal(e->n_cells, 0);
    assert_int_equal(e->n_devices, 0);
    protobuf_c_message_free_unpacked(&e->base, NULL);
    bson_destroy(&doc);
}

static void test_packed_large_message_is_deflated(void **state)
{
    (void)state;
    /* 5000 cells: more than 64 KiB packed (a length prefix of three bytes),
     * repetitive enough that deflating shrinks it */
    enum { N = 5000 };
    Iot__V1__RollupCell *cells = calloc(N, sizeof(*cells));
    Iot__V1__RollupCell **ptrs = calloc(N, sizeof(*ptrs));
    static char zones[N][16];
    assert_non_null(cells);
    assert_non_null(ptrs);
    for (int i = 0; i < N; i++) {
        iot__v1__rollup_cell__init(&cells[i]);
        snprintf(zones[i], sizeof(zones[i]), "zone-%04d", i);
        cells[i].zone = zones[i];
        cells[i].label = "temperature";
        cells[i].code = "";
        cells[i].count = i;
        cells[i].sum = i * 1.5;
        cells[i].min = -i;
        cells[i].max = i;
        ptrs[i] = &cells[i];
    }
    Iot__V1__RollupState m = IOT__V1__ROLLUP_STATE__INIT;
    m.n_cells = N;
    m.cells = ptrs;
    size_t raw_len = protobuf_c_message_get_packed_size(&m.base);
    assert_true(raw_len > 65536);

    bson_t doc = BSON_INITIALIZER;
    assert_int_equal(pw_store_append_packed(&doc, "state", &m.base), 0);
    uint32_t len = assert_deflated_field(&doc, "state", &m.base);
    assert_true(len < raw_len / 2);
    bson_subtype_t sub;
    const uint8_t *data = NULL;
    binary_of(&doc, "state", &sub, &len, &data);
    assert_int_equal(data[0], raw_len & 0xff); /* little-endian */
    assert_int_equal(data[1], (raw_len >> 8) & 0xff);
    assert_int_equal(data[2], (raw_len >> 16) & 0xff);
    assert_int_equal(data[3], 0);

    int bad = 0;
    Iot__V1__RollupState *back = (Iot__V1__RollupState *)pw_store_unpack(
        &doc, "state", &iot__v1__rollup_state__descriptor, &bad);
    assert_non_null(back);
    assert_int_equal(bad, 0);
    assert_int_equal(back->n_cells, N);
    for (int i = 0; i < N; i++) {
        assert_string_equal(back->cells[i]->zone, zones[i]);
        assert_string_equal(back->cells[i]->label, "temperature");
        assert_int_equal(back->cells[i]->count, i);
        assert_true(back->cells[i]->sum == i * 1.5);
        assert_true(back->cells[i]->min == -i);
    }
    protobuf_c_message_free_unpacked(&back->base, NULL);
    bson_destroy(&doc);
    free(ptrs);
    free(cells);
}

static void test_unpack_subtype_0_still_accepted(void **state)
{
    (void)state;
    /* documents written before the change: the message as is, subtype 0 */
    Iot__V1__DeviceCensus m = census_message();
    size_t len = 0;
    uint8_t *raw = packed_of(&m.base, &len);
    bson_t doc = BSON_INITIALIZER;
    assert_true(bson_append_binary(&doc, "state", -1, BSON_SUBTYPE_BINARY, raw, (uint32_t)len));
    assert_true(bson_append_binary(&doc, "empty", -1, BSON_SUBTYPE_BINARY, raw, 0));
    free(raw);

    int bad = 0;
    Iot__V1__DeviceCensus *back = (Iot__V1__DeviceCensus *)pw_store_unpack(
        &doc, "state", &iot__v1__device_census__descriptor, &bad);
    assert_non_null(back);
    assert_int_equal(bad, 0);
    assert_census_message(back);
    protobuf_c_message_free_unpacked(&back->base, NULL);

    /* zero bytes of subtype 0: an empty message (no length prefix needed) */
    back = (Iot__V1__DeviceCensus *)pw_store_unpack(&doc, "empty",
                                                    &iot__v1__device_census__descriptor, &bad);
    assert_non_null(back);
    assert_int_equal(bad, 0);
    assert_int_equal(back->n_device_ids, 0);
    protobuf_c_message_free_unpacked(&back->base, NULL);
    bson_destroy(&doc);
}

static void test_unpack_rejects_bad_deflated_fields(void **state)
{
    (void)state;
    const ProtobufCMessageDescriptor *d = &iot__v1__device_census__descriptor;
    Iot__V1__DeviceCensus m = census_message();
    size_t n = 0;
    uint8_t *raw = packed_of(&m.base, &n);
    bson_t doc = BSON_INITIALIZER;

    /* the reference: the same message, deflated by hand, is accepted */
    append_deflated(&doc, "ok", (uint32_t)n, raw, n, SIZE_MAX);
    int bad = 0;
    Iot__V1__DeviceCensus *back = (Iot__V1__DeviceCensus *)pw_store_unpack(&doc, "ok", d, &bad);
    assert_non_null(back);
    assert_int_equal(bad, 0);
    assert_census_message(back);
    protobuf_c_message_free_unpacked(&back->base, NULL);

    /* shorter than the 4-byte length prefix */
    static const uint8_t prefix[] = {0x00, 0x00, 0x00, 0x00};
    assert_true(bson_append_binary(&doc, "short0", -1, PW_STORE_SUBTYPE_DEFLATED, prefix, 0));
    assert_true(bson_append_binary(&doc, "short1", -1, PW_STORE_SUBTYPE_DEFLATED, prefix, 1));
    assert_true(bson_append_binary(&doc, "short3", -1, PW_STORE_SUBTYPE_DEFLATED, prefix, 3));
    assert_rejected(&doc, "short0", d);
    assert_rejected(&doc, "short1", d);
    assert_rejected(&doc, "short3", d);
    /* the prefix and no stream at all (even for length 0) */
    assert_true(bson_append_binary(&doc, "nostream", -1, PW_STORE_SUBTYPE_DEFLATED, prefix, 4));
    assert_rejected(&doc, "nostream", d);

    /* a length above PW_STORE_PACKED_MAX, whatever follows */
    append_deflated(&doc, "toolong", PW_STORE_PACKED_MAX + 1, raw, n, SIZE_MAX);
    assert_rejected(&doc, "toolong", d);
    append_deflated(&doc, "huge", UINT32_MAX, raw, n, SIZE_MAX);
    assert_rejected(&doc, "huge", d);

    /* streams that do not inflate to exactly the stated length */
    append_deflated(&doc, "more", (uint32_t)n - 1, raw, n, SIZE_MAX);
    assert_rejected(&doc, "more", d);
    append_deflated(&doc, "less", (uint32_t)n + 1, raw, n, SIZE_MAX);
    assert_rejected(&doc, "less", d);
    append_deflated(&doc, "zero", 0, raw, n, SIZE_MAX);
    assert_rejected(&doc, "zero", d);
    append_deflated(&doc, "truncated", (uint32_t)n, raw, n, 6);
    assert_rejected(&doc, "truncated", d);
    /* not a zlib stream: the message itself behind the prefix */
    uint8_t *plain = malloc(4 + n);
    assert_non_null(plain);
    for (int i = 0; i < 4; i++) {
        plain[i] = (uint8_t)(n >> (8 * i));
    }
    memcpy(plain + 4, raw, n);
    assert_true(
        bson_append_binary(&doc, "plain", -1, PW_STORE_SUBTYPE_DEFLATED, plain, (uint32_t)(4 + n)));
    assert_rejected(&doc, "plain", d);
    free(plain);
    /* a stream whose checksum does not match (one byte of its data flipped) */
    uLongf zlen = compressBound(n);
    uint8_t *z = malloc(4 + zlen);
    assert_non_null(z);
    for (int i = 0; i < 4; i++) {
        z[i] = (uint8_t)(n >> (8 * i));
    }
    assert_int_equal(compress2(z + 4, &zlen, raw, n, 1), Z_OK);
    z[4 + zlen - 1] ^= 0x01; /* the adler32 trailer */
    assert_true(bson_append_binary(&doc, "checksum", -1, PW_STORE_SUBTYPE_DEFLATED, z,
                                   (uint32_t)(4 + zlen)));
    assert_rejected(&doc, "checksum", d);
    free(z);

    /* inflates to exactly the stated length, but the bytes do not decode */
    static const uint8_t truncated[] = {0x0a, 0x20, 0x0a, 0x03, 'd', 'e', 'v'};
    static const uint8_t bad_wire[] = {0x0f};
    append_deflated(&doc, "undecodable", sizeof(truncated), truncated, sizeof(truncated), SIZE_MAX);
    assert_rejected(&doc, "undecodable", d);
    append_deflated(&doc, "wire", sizeof(bad_wire), bad_wire, sizeof(bad_wire), SIZE_MAX);
    assert_rejected(&doc, "wire", &iot__v1__rollup_state__descriptor);
    free(raw);
    bson_destroy(&doc);
}

static void test_append_packed_refuses_oversized(void **state)
{
    (void)state;
    /* 64 device ids of 2^20 - 4 bytes: each 1 tag byte + a 3-byte length +
     * the id, 2^26 bytes in all, exactly PW_STORE_PACKED_MAX (the ids share
     * one buffer; the one at big + 0 is a byte longer) */
    enum { K = 64 };
    const size_t L = (1u << 20) - 4;
    char *big = malloc(L + 2);
    assert_non_null(big);
    memset(big, 'x', L + 1);
    big[L + 1] = '\0';
    char *ids[K];
    for (int i = 0; i < K; i++) {
        ids[i] = big + 1;
    }
    Iot__V1__DeviceCensus m = IOT__V1__DEVICE_CENSUS__INIT;
    m.n_device_ids = K;
    m.device_ids = ids;
    assert_int_equal(protobuf_c_message_get_packed_size(&m.base), PW_STORE_PACKED_MAX);
    assert_int_equal(PW_STORE_PACKED_MAX, 64u << 20);

    /* one byte more: refused, and the document is left as it was */
    ids[0] = big;
    assert_int_equal(protobuf_c_message_get_packed_size(&m.base), PW_STORE_PACKED_MAX + 1);
    bson_t doc = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&doc, "_id", "x");
    uint32_t before = doc.len;
    assert_int_equal(pw_store_append_packed(&doc, "state", &m.base), -1);
    assert_int_equal(doc.len, before);
    assert_int_equal(bson_count_keys(&doc), 1);
    int bad = 0;
    assert_null(pw_store_unpack(&doc, "state", &iot__v1__device_census__descriptor, &bad));
    assert_int_equal(bad, 0); /* absent */

    /* exactly the limit: written, and read back */
    ids[0] = big + 1;
    assert_int_equal(pw_store_append_packed(&doc, "state", &m.base), 0);
    bson_subtype_t sub;
    uint32_t len = 0;
    const uint8_t *data = NULL;
    binary_of(&doc, "state", &sub, &len, &data);
    assert_int_equal(sub, PW_STORE_SUBTYPE_DEFLATED);
    assert_int_equal(le32(data), PW_STORE_PACKED_MAX);
    assert_true(len < (1u << 20)); /* 64 MiB of one letter deflates well */
    Iot__V1__DeviceCensus *back = (Iot__V1__DeviceCensus *)pw_store_unpack(
        &doc, "state", &iot__v1__device_census__descriptor, &bad);
    assert_non_null(back);
    assert_int_equal(bad, 0);
    assert_int_equal(back->n_device_ids, K);
    for (int i = 0; i < K; i++) {
        assert_int_equal(strlen(back->device_ids[i]), L);
    }
    assert_memory_equal(back->device_ids[K - 1], big + 1, L);
    protobuf_c_message_free_unpacked(&back->base, NULL);
    bson_destroy(&doc);
    free(big);
}

/* A deflated field whose length prefix says 0 but whose stream inflates to
 * one byte is refused. With an output length of 0, zlib's uncompress inflates into a scratch byte
 * and does not report how much came out, so pw_store.c gives it one byte
 * more than stated. */
static void test_unpack_rejects_zero_length_that_inflates_to_one_byte(void **state)
{
    (void)state;
    static const uint8_t one[] = {0x0f};
    bson_t doc = BSON_INITIALIZER;
    append_deflated(&doc, "one", 0, one, sizeof(one), SIZE_MAX);
    assert_rejected(&doc, "one", &iot__v1__device_census__descriptor);
    bson_destroy(&doc);
}

static void test_unpack_absent_bad_and_garbage(void **state)
{
    (void)state;
    bson_t *doc = BCON_NEW("_id", "x", "text", "not binary", "num", BCON_INT64(7));
    static const uint8_t truncated[] = {0x0a, 0x20, 0x0a, 0x03, 'd', 'e', 'v'};
    static const uint8_t bad_wire[] = {0x0f};
    BSON_APPEND_BINARY(doc, "truncated", BSON_SUBTYPE_BINARY, truncated, sizeof(truncated));
    BSON_APPEND_BINARY(doc, "wire", BSON_SUBTYPE_BINARY, bad_wire, sizeof(bad_wire));

    /* absent: NULL, *bad left alone */
    int bad = 0;
    assert_null(pw_store_unpack(doc, "state", &iot__v1__device_census__descriptor, &bad));
    assert_int_equal(bad, 0);
    bad = 7;
    assert_null(pw_store_unpack(doc, "state", &iot__v1__device_census__descriptor, &bad));
    assert_int_equal(bad, 7);

    /* present but not binary */
    bad = 0;
    assert_null(pw_store_unpack(doc, "text", &iot__v1__device_census__descriptor, &bad));
    assert_int_equal(bad, 1);
    bad = 0;
    assert_null(pw_store_unpack(doc, "num", &iot__v1__device_census__descriptor, &bad));
    assert_int_equal(bad, 1);

    /* binary that does not decode */
    bad = 0;
    assert_null(pw_store_unpack(doc, "truncated", &iot__v1__device_census__descriptor, &bad));
    assert_int_equal(bad, 1);
    bad = 0;
    assert_null(pw_store_unpack(doc, "wire", &iot__v1__rollup_state__descriptor, &bad));
    assert_int_equal(bad, 1);
    bson_destroy(doc);
}

/* ---- the query-plan check -------------------------------------------------------------- */

typedef struct {
    pw_store_plans *plans;
    mongoc_collection_t *coll;
    const bson_t *filter;
} check_args;

static check_args args;

/* Runs fn with stderr redirected to a file; returns what was written. */
static char *capture(void (*fn)(void))
{
    char path[] = "/tmp/pw_store_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    fflush(stderr);
    int saved = dup(2);
    dup2(fd, 2);
    fn();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    off_t len = lseek(fd, 0, SEEK_END);
    char *buf = calloc(1, (size_t)len + 1);
    assert_non_null(buf);
    assert_int_equal(pread(fd, buf, (size_t)len, 0), len);
    close(fd);
    unlink(path);
    return buf;
}

static void check_once(void)
{
    pw_store_plan_check(args.plans, args.coll, args.filter, "unit test", PW_QUERY_FILTERED);
}

static size_t count_of(const char *s, const char *what)
{
    size_t n = 0;
    for (const char *p = strstr(s, what); p; p = strstr(p + 1, what)) {
        n++;
    }
    return n;
}

static void test_plan_check_disabled_is_a_no_op(void **state)
{
    (void)state;
    bson_t *filter = BCON_NEW("_id", "x");
    /* disabled: returns before it looks at the collection (NULL here) */
    pw_store_plans *off = pw_store_plans_new(0);
    assert_non_null(off);
    args = (check_args){off, NULL, filter};
    char *out = capture(check_once);
    assert_string_equal(out, "");
    free(out);
    /* no registry at all: the same */
    args = (check_args){NULL, NULL, filter};
    out = capture(check_once);
    assert_string_equal(out, "");
    free(out);
    pw_store_plans_free(off);
    pw_store_plans_free(NULL);
    bson_destroy(filter);
}

static void test_plan_check_enabled_logs_each_shape_once(void **state)
{
    (void)state;
    /* nothing listens on port 1: the explain fails at once, and the plan is
     * logged as unknown */
    mongoc_client_t *client = mongoc_client_new(
        "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=200&connectTimeoutMS=200");
    assert_non_null(client);
    mongoc_collection_t *coll = mongoc_client_get_collection(client, "pw_unit", "things");
    pw_store_plans *on = pw_store_plans_new(1);
    assert_non_null(on);
    bson_t *by_id = BCON_NEW("_id", "x");
    bson_t *by_id2 = BCON_NEW("_id", "y"); /* the same shape */
    bson_t *by_ts = BCON_NEW("ts", "{", "$lt", BCON_INT64(5), "}");

    args = (check_args){on, coll, by_id};
    char *out = capture(check_once);
    assert_int_equal(count_of(out, "\"event\":\"store_query_plan\""), 1);
    assert_int_equal(count_of(out, "\"collection\":\"things\""), 1);
    assert_int_equal(count_of(out, "\"shape\":\"{_id}\""), 1);
    assert_int_equal(count_of(out, "\"purpose\":\"unit test\""), 1);
    assert_int_equal(count_of(out, "\"plan\":\"unknown\""), 1);
    assert_int_equal(count_of(out, "\"whole\":false"), 1);
    free(out);

    /* a shape already checked is not checked again */
    args = (check_args){on, coll, by_id2};
    out = capture(check_once);
    assert_string_equal(out, "");
    free(out);

    /* another shape is */
    args = (check_args){on, coll, by_ts};
    out = capture(check_once);
    assert_int_equal(count_of(out, "\"event\":\"store_query_plan\""), 1);
    assert_int_equal(count_of(out, "\"shape\":\"{ts:$lt}\""), 1);
    free(out);

    bson_destroy(by_ts);
    bson_destroy(by_id2);
    bson_destroy(by_id);
    pw_store_plans_free(on);
    mongoc_collection_destroy(coll);
    mongoc_client_destroy(client);
}

/* ---- the client URI --------------------------------------------------------------------- */

static void test_uri_from_env(void **state)
{
    (void)state;
    char err[256] = "";
    unsetenv("PW_MONGO_URI_FILE");
    unsetenv("PW_MONGO_URI");
    mongoc_uri_t *uri = pw_store_uri_from_env(1500, 4000, err, sizeof(err));
    assert_non_null(uri);
    const mongoc_host_list_t *h = mongoc_uri_get_hosts(uri);
    assert_string_equal(h->host, "127.0.0.1");
    assert_int_equal(h->port, 27017);
    assert_int_equal(mongoc_uri_get_option_as_int32(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, 0),
                     1500);
    assert_int_equal(mongoc_uri_get_option_as_int32(uri, MONGOC_URI_CONNECTTIMEOUTMS, 0), 2000);
    assert_int_equal(mongoc_uri_get_option_as_int32(uri, MONGOC_URI_SOCKETTIMEOUTMS, 0), 4000);
    mongoc_uri_destroy(uri);

    /* timeouts the URI sets are kept */
    setenv("PW_MONGO_URI", "mongodb://store.example:27018/?connectTimeoutMS=50", 1);
    uri = pw_store_uri_from_env(1500, 4000, err, sizeof(err));
    assert_non_null(uri);
    h = mongoc_uri_get_hosts(uri);
    assert_string_equal(h->host, "store.example");
    assert_int_equal(h->port, 27018);
    assert_int_equal(mongoc_uri_get_option_as_int32(uri, MONGOC_URI_CONNECTTIMEOUTMS, 0), 50);
    assert_int_equal(mongoc_uri_get_option_as_int32(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, 0),
                     1500);
    mongoc_uri_destroy(uri);

    /* an invalid URI: the message does not repeat it (it may hold a password) */
    setenv("PW_MONGO_URI", "mongodb://user:hunter2@/bad?", 1);
    mongoc_log_set_handler(NULL, NULL); /* mongoc's own complaint is not ours to show */
    assert_null(pw_store_uri_from_env(1500, 4000, err, sizeof(err)));
    mongoc_log_set_handler(mongoc_log_default_handler, NULL);
    assert_string_equal(err, "PW_MONGO_URI is not a valid MongoDB URI");
    assert_null(strstr(err, "hunter2"));

    /* a URI file that cannot be read */
    setenv("PW_MONGO_URI_FILE", "/nonexistent/pw-mongo-uri", 1);
    assert_null(pw_store_uri_from_env(1500, 4000, err, sizeof(err)));
    assert_string_equal(err, "PW_MONGO_URI_FILE: cannot read /nonexistent/pw-mongo-uri");
    unsetenv("PW_MONGO_URI_FILE");
    unsetenv("PW_MONGO_URI");
}

int main(void)
{
    mongoc_init();
    pw_log_init("unit", "unit-1", "info");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_filter_shape),
        cmocka_unit_test(test_filter_shape_truncates_within_outlen),
        cmocka_unit_test(test_packed_round_trip),
        cmocka_unit_test(test_packed_large_message_is_deflated),
        cmocka_unit_test(test_unpack_subtype_0_still_accepted),
        cmocka_unit_test(test_unpack_rejects_bad_deflated_fields),
        cmocka_unit_test(test_unpack_absent_bad_and_garbage),
        cmocka_unit_test(test_append_packed_refuses_oversized),
        cmocka_unit_test(test_unpack_rejects_zero_length_that_inflates_to_one_byte),
        cmocka_unit_test(test_plan_check_disabled_is_a_no_op),
        cmocka_unit_test(test_plan_check_enabled_logs_each_shape_once),
        cmocka_unit_test(test_uri_from_env),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    mongoc_cleanup();
    return rc;
}
