/* mx_params: parameter validation shared by the REST shim and gRPC. */
#include "mx_params.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void mx_param_error_init(mx_param_error *e)
{
    e->count = 0;
    e->message[0] = '\0';
    e->details = json_array();
}

void mx_param_error_free(mx_param_error *e)
{
    json_decref(e->details);
    e->details = NULL;
}

static void add_error(mx_param_error *e, const char *param, const char *value, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void add_error(mx_param_error *e, const char *param, const char *value, const char *fmt, ...)
{
    char reason[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);

    size_t used = strlen(e->message);
    snprintf(e->message + used, sizeof(e->message) - used, "%s%s: %s", e->count ? "; " : "", param,
             reason);
    if (++e->count > MX_PARAM_DETAILS_MAX) {
        return;
    }
    json_t *d = json_pack("{s:s, s:s}", "param", param, "reason", reason);
    if (d != NULL && value != NULL) {
        /* values are echoed only when they are valid UTF-8 */
        char shown[65];
        snprintf(shown, sizeof(shown), "%s", value);
        pw_utf8_trim_tail(shown);
        json_t *v = json_string(shown);
        if (v != NULL) {
            json_object_set_new(d, "value", v);
        }
    }
    if (d != NULL && e->details != NULL) {
        json_array_append_new(e->details, d);
    }
}

void mx_param_error_add(mx_param_error *e, const char *param, const char *value, const char *reason)
{
    add_error(e, param, value, "%s", reason);
}

/* 1 if s is at most max bytes of printable ASCII (safe to quote in a message). */
static int printable_ascii(const char *s, size_t max)
{
    size_t n = 0;
    for (; s[n] != '\0'; n++) {
        if (n >= max || s[n] < 0x20 || s[n] > 0x7e) {
            return 0;
        }
    }
    return 1;
}

void mx_params_defaults(const mx_param_spec *specs, size_t n, mx_params *out)
{
    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < n; i++) {
        if (specs[i].kind == MX_PARAM_UINT) {
            *(uint32_t *)((char *)out + specs[i].offset) = specs[i].def;
        }
    }
}

/* The zone filter follows the rules of an accepted zone: strict UTF-8, no
 * control characters, at most MX_ZONE_MAX characters. */
static int zone_valid(const char *s, size_t len, mx_param_error *e, const char *name)
{
    size_t chars = 0;
    int ctrl = 0;
    if (pw_utf8_scan(s ? s : "", len, 0, &chars, &ctrl) != 0) {
        add_error(e, name, NULL, "must be valid UTF-8");
        return -1;
    }
    if (chars > MX_ZONE_MAX || len > MX_ZONE_BYTES) {
        add_error(e, name, NULL, "must be at most %d characters", MX_ZONE_MAX);
        return -1;
    }
    if (ctrl) {
        add_error(e, name, NULL, "must not contain control characters");
        return -1;
    }
    return 0;
}

static int set_uint_text(const mx_param_spec *sp, mx_params *p, const char *value,
                         mx_param_error *e)
{
    uint64_t v = 0;
    size_t len = strlen(value);
    int ok = len > 0 && len <= 10;
    for (size_t i = 0; ok && i < len; i++) {
        if (value[i] < '0' || value[i] > '9') {
            ok = 0;
        } else {
            v = v * 10 + (uint64_t)(value[i] - '0');
        }
    }
    if (!ok || v < sp->min || v > sp->max) {
        if (printable_ascii(value, 24)) {
            add_error(e, sp->name, value, "must be an integer between %u and %u, got \"%s\"",
                      sp->min, sp->max, value);
        } else {
            add_error(e, sp->name, value, "must be an integer between %u and %u", sp->min, sp->max);
        }
        return -1;
    }
    *(uint32_t *)((char *)p + sp->offset) = (uint32_t)v;
    return 0;
}

int mx_params_set_text(const mx_param_spec *specs, size_t n, mx_params *p, unsigned *seen_mask,
                       const char *name, const char *value, mx_param_error *e)
{
    size_t i;
    for (i = 0; i < n; i++) {
        if (strcmp(specs[i].name, name) == 0) {
            break;
        }
    }
    if (i == n) {
        /* the name is shown only when it is short printable ASCII */
        if (!printable_ascii(name, 32)) {
            name = "(unprintable or long name)";
        }
        char allowed[256] = "";
        for (size_t j = 0; j < n; j++) {
            size_t used = strlen(allowed);
            snprintf(allowed + used, sizeof(allowed) - used, "%s%s", j ? ", " : "", specs[j].name);
        }
        if (n == 0) {
            add_error(e, name, NULL, "unknown parameter (this view takes none)");
        } else {
            add_error(e, name, NULL, "unknown parameter (allowed: %s)", allowed);
        }
        return -1;
    }
    const mx_param_spec *sp = &specs[i];
    if (*seen_mask & (1u << i)) {
        add_error(e, sp->name, NULL, "given more than once");
        return -1;
    }
    *seen_mask |= 1u << i;
    if (value == NULL) {
        add_error(e, sp->name, NULL, "requires a value");
        return -1;
    }
    if (sp->kind == MX_PARAM_ZONE) {
        size_t len = strlen(value);
        if (zone_valid(value, len, e, sp->name) != 0) {
            return -1;
        }
        memcpy((char *)p + sp->offset, value, len + 1);
        return 0;
    }
    return set_uint_text(sp, p, value, e);
}

int mx_params_from_message(const mx_param_spec *specs, size_t n, const ProtobufCMessage *req,
                           mx_params *p, mx_param_error *e)
{
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        const mx_param_spec *sp = &specs[i];
        const ProtobufCFieldDescriptor *f =
            protobuf_c_message_descriptor_get_field_by_name(req->descriptor, sp->name);
        if (f == NULL) {
            continue;
        }
        const char *field = (const char *)req + f->offset;
        if (sp->kind == MX_PARAM_ZONE && f->type == PROTOBUF_C_TYPE_STRING) {
            const char *s = *(char *const *)field;
            size_t len = s ? strlen(s) : 0;
            if (zone_valid(s, len, e, sp->name) != 0) {
                rc = -1;
            } else if (len > 0) {
                memcpy((char *)p + sp->offset, s, len + 1);
            }
        } else if (sp->kind == MX_PARAM_UINT && f->type == PROTOBUF_C_TYPE_UINT32) {
            uint32_t v = *(const uint32_t *)field;
            if (v == 0) {
                continue; /* unset: default */
            }
            if (v < sp->min || v > sp->max) {
                char got[16];
                snprintf(got, sizeof(got), "%u", v);
                add_error(e, sp->name, got, "must be an integer between %u and %u, got %s", sp->min,
                          sp->max, got);
                rc = -1;
            } else {
                *(uint32_t *)((char *)p + sp->offset) = v;
            }
        }
    }
    return rc;
}
