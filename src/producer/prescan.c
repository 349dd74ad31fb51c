/* prescan: wire-format walk of a PublishRequest (see prescan.h). The walk
 * knows the field numbers of iot.v1.PublishRequest, Reading and Alert and
 * nothing else; everything it accepts is still decoded and validated by
 * protobuf-c and pw_validate afterwards. */
#include "prescan.h"

#include <stdio.h>
#include <string.h>

#include "pw_validate.h"

_Static_assert(PW_PRESCAN_MAX_ITEM_FIELDS == 32, "the item message below says 32");

enum { PW_WT_VARINT = 0, PW_WT_I64 = 1, PW_WT_LEN = 2, PW_WT_I32 = 5 };

/* A cursor over one message's bytes; base is the request's first byte. */
typedef struct {
    const uint8_t *p, *end, *base;
} pw_prescan_cur;

/* One decoded field: number, wire type and, for LEN fields, the payload. */
typedef struct {
    uint32_t number;
    unsigned wire_type;
    const uint8_t *data;
    size_t len;
} pw_prescan_field;

/* A varint of at most 10 bytes whose value fits 64 bits. 0 or -1. */
static int pw_prescan_varint(pw_prescan_cur *c, uint64_t *out)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < 10; i++) {
        if (c->p >= c->end) {
            return -1;
        }
        uint8_t b = *c->p++;
        if (i == 9 && b > 1) {
            return -1;
        }
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return -1;
}

static int pw_prescan_skip(pw_prescan_cur *c, size_t n)
{
    if ((size_t)(c->end - c->p) < n) {
        return -1;
    }
    c->p += n;
    return 0;
}

/* Reads the next field and steps over its value. 0 or -1 (malformed). */
static int pw_prescan_next(pw_prescan_cur *c, pw_prescan_field *f)
{
    uint64_t tag, v;
    if (pw_prescan_varint(c, &tag) != 0 || tag > UINT32_MAX || (tag >> 3) == 0) {
        return -1;
    }
    f->number = (uint32_t)(tag >> 3);
    f->wire_type = (unsigned)(tag & 7);
    f->data = NULL;
    f->len = 0;
    switch (f->wire_type) {
    case PW_WT_VARINT:
        return pw_prescan_varint(c, &v);
    case PW_WT_I64:
        return pw_prescan_skip(c, 8);
    case PW_WT_I32:
        return pw_prescan_skip(c, 4);
    case PW_WT_LEN:
        if (pw_prescan_varint(c, &v) != 0 || v > (uint64_t)(c->end - c->p)) {
            return -1;
        }
        f->data = c->p;
        f->len = (size_t)v;
        c->p += v;
        return 0;
    default: /* groups (3, 4) and the unassigned 6, 7 */
        return -1;
    }
}

/* The name of a string field of a Reading (alert = 0) or an Alert, or NULL
 * when the number is not a string field of that message. */
static const char *pw_prescan_string_field(int alert, uint32_t number)
{
    static const char *const reading[8] = {NULL, "device_id", "zone", "type",
                                           NULL, "unit",      NULL,   "firmware"};
    static const char *const alerts[8] = {NULL,   "device_id", "zone", NULL,
                                          "code", "message",   NULL,   "firmware"};
    if (number >= 8) {
        return NULL;
    }
    return alert ? alerts[number] : reading[number];
}

/* The wire type a schema field of Reading/Alert needs, or -1 if unknown. */
static int pw_prescan_item_wire_type(int alert, uint32_t number)
{
    if (number == 0 || number > 7) {
        return -1;
    }
    if (pw_prescan_string_field(alert, number)) {
        return PW_WT_LEN;
    }
    if (!alert && number == 4) {
        return PW_WT_I64; /* double value */
    }
    return PW_WT_VARINT; /* ts_ms, severity */
}

static pw_prescan_rc pw_prescan_fail(pw_prescan_result *out, pw_prescan_rc rc, size_t offset,
                                     const char *fmt, const char *list, size_t index,
                                     const char *field)
{
    out->offset = offset;
    if (rc == PW_PRESCAN_MALFORMED) {
        snprintf(out->message, sizeof(out->message),
                 "request is not a valid iot.v1.PublishRequest (malformed at byte %zu)", offset);
    } else {
        snprintf(out->message, sizeof(out->message), fmt, list, index, field);
    }
    return rc;
}

/* Scans one Reading or Alert payload (the index-th of its list). */
static pw_prescan_rc pw_prescan_item(const pw_prescan_cur *outer, const pw_prescan_field *item,
                                     int alert, size_t index, pw_prescan_result *out)
{
    const char *list = alert ? "alerts" : "readings";
    pw_prescan_cur c = {item->data, item->data + item->len, outer->base};
    size_t fields = 0;
    while (c.p < c.end) {
        size_t at = (size_t)(c.p - c.base);
        pw_prescan_field f;
        if (pw_prescan_next(&c, &f) != 0) {
            return pw_prescan_fail(out, PW_PRESCAN_MALFORMED, at, NULL, NULL, 0, NULL);
        }
        if (++fields > PW_PRESCAN_MAX_ITEM_FIELDS) {
            return pw_prescan_fail(out, PW_PRESCAN_TOO_DENSE, at,
                                   "%s[%zu]: more than 32 field occurrences%s", list, index, "");
        }
        int want = pw_prescan_item_wire_type(alert, f.number);
        if (want >= 0 && (unsigned)want != f.wire_type) {
            return pw_prescan_fail(out, PW_PRESCAN_MALFORMED, at, NULL, NULL, 0, NULL);
        }
        const char *name = pw_prescan_string_field(alert, f.number);
        if (name && memchr(f.data, 0, f.len)) {
            return pw_prescan_fail(out, PW_PRESCAN_NUL, at, "%s[%zu].%s: must not contain U+0000",
                                   list, index, name);
        }
    }
    return PW_PRESCAN_OK;
}

/* Handles one top-level field; counts it in out. */
static pw_prescan_rc pw_prescan_top(const pw_prescan_cur *c, const pw_prescan_field *f, size_t at,
                                    size_t *extra, pw_prescan_result *out)
{
    if (f->number == 1 || f->number == 2) {
        if (f->wire_type != PW_WT_LEN) {
            return pw_prescan_fail(out, PW_PRESCAN_MALFORMED, at, NULL, NULL, 0, NULL);
        }
        int alert = f->number == 2;
        size_t index = alert ? out->alerts++ : out->readings++;
        if (out->readings + out->alerts > PW_MAX_BATCH) {
            out->offset = at;
            snprintf(out->message, sizeof(out->message),
                     "readings/alerts: at most %d messages per request", PW_MAX_BATCH);
            return PW_PRESCAN_TOO_MANY;
        }
        return pw_prescan_item(c, f, alert, index, out);
    }
    if (++*extra > PW_PRESCAN_MAX_EXTRA_FIELDS) {
        out->offset = at;
        snprintf(out->message, sizeof(out->message),
                 "request: more than %d occurrences of fields other than readings/alerts",
                 PW_PRESCAN_MAX_EXTRA_FIELDS);
        return PW_PRESCAN_TOO_DENSE;
    }
    if (f->number == 3) {
        if (f->wire_type != PW_WT_LEN) {
            return pw_prescan_fail(out, PW_PRESCAN_MALFORMED, at, NULL, NULL, 0, NULL);
        }
        if (memchr(f->data, 0, f->len)) {
            out->offset = at;
            snprintf(out->message, sizeof(out->message),
                     "idempotency_key: must not contain U+0000");
            return PW_PRESCAN_NUL;
        }
    }
    return PW_PRESCAN_OK;
}

pw_prescan_rc pw_prescan_publish_request(const uint8_t *buf, size_t len, pw_prescan_result *out)
{
    memset(out, 0, sizeof(*out));
    pw_prescan_cur c = {buf, buf + len, buf};
    size_t extra = 0;
    while (c.p < c.end) {
        size_t at = (size_t)(c.p - c.base);
        pw_prescan_field f;
        if (pw_prescan_next(&c, &f) != 0) {
            return pw_prescan_fail(out, PW_PRESCAN_MALFORMED, at, NULL, NULL, 0, NULL);
        }
        pw_prescan_rc rc = pw_prescan_top(&c, &f, at, &extra, out);
        if (rc != PW_PRESCAN_OK) {
            return rc;
        }
    }
    return PW_PRESCAN_OK;
}
