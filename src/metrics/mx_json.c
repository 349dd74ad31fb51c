/* mx_json: descriptor-driven protobuf-c → JSON mapping. */
#include "mx_json.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "pw_time.h"

static json_t *scalar_json(const ProtobufCFieldDescriptor *f, const void *member)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        return json_integer(*(const int32_t *)member);
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        return json_integer(*(const uint32_t *)member);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        return json_integer(*(const int64_t *)member);
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64: {
        uint64_t v = *(const uint64_t *)member;
        return json_integer(v > (uint64_t)INT64_MAX ? INT64_MAX : (json_int_t)v);
    }
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_DOUBLE: {
        double d =
            f->type == PROTOBUF_C_TYPE_FLOAT ? *(const float *)member : *(const double *)member;
        return isfinite(d) ? json_real(d) : json_null();
    }
    case PROTOBUF_C_TYPE_BOOL:
        return json_boolean(*(const protobuf_c_boolean *)member);
    case PROTOBUF_C_TYPE_ENUM: {
        const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(
            (const ProtobufCEnumDescriptor *)f->descriptor, *(const int *)member);
        return ev ? json_string(ev->name) : json_integer(*(const int *)member);
    }
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)member;
        return json_string(s ? s : "");
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *b = member;
        return json_stringn((const char *)b->data, b->len); /* not used by the metrics API */
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *m = *(ProtobufCMessage *const *)member;
        return m ? mx_json_from_message(m) : json_null();
    }
    }
    return json_null();
}

static size_t scalar_size(const ProtobufCFieldDescriptor *f)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_ENUM:
        return 4;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        return 8;
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(void *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    }
    return 0;
}

/* "<x>_ms" int64 fields also appear as "<x>": RFC 3339 (null for 0), unless
 * the message has a field "<x>" of its own (ReadingHistory: step, step_ms). */
static int add_time_twin(json_t *obj, const ProtobufCMessageDescriptor *d,
                         const ProtobufCFieldDescriptor *f, const void *member)
{
    size_t len = strlen(f->name);
    if (f->label == PROTOBUF_C_LABEL_REPEATED || f->type != PROTOBUF_C_TYPE_INT64 || len <= 3 ||
        strcmp(f->name + len - 3, "_ms") != 0) {
        return 0;
    }
    char key[128];
    if (len - 3 >= sizeof(key)) {
        return 0;
    }
    memcpy(key, f->name, len - 3);
    key[len - 3] = '\0';
    if (protobuf_c_message_descriptor_get_field_by_name(d, key) != NULL) {
        return 0;
    }
    int64_t ms = *(const int64_t *)member;
    if (ms == 0) {
        return json_object_set_new(obj, key, json_null());
    }
    char text[PW_RFC3339_LEN];
    pw_time_format_rfc3339(ms, text);
    return json_object_set_new(obj, key, json_string(text));
}

json_t *mx_json_from_message(const ProtobufCMessage *msg)
{
    const ProtobufCMessageDescriptor *d = msg->descriptor;
    json_t *obj = json_object();
    if (obj == NULL) {
        return NULL;
    }
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const char *member = (const char *)msg + f->offset;
        json_t *v;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)((const char *)msg + f->quantifier_offset);
            const char *arr = *(char *const *)member;
            v = json_array();
            for (size_t k = 0; v != NULL && k < n; k++) {
                if (json_array_append_new(v, scalar_json(f, arr + k * scalar_size(f))) != 0) {
                    json_decref(v);
                    v = NULL;
                }
            }
        } else {
            v = scalar_json(f, member);
        }
        if (v == NULL || json_object_set_new(obj, f->name, v) != 0 ||
            add_time_twin(obj, d, f, member) != 0) {
            json_decref(obj);
            return NULL;
        }
    }
    return obj;
}
