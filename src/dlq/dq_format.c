/* dq_format: text lines, NDJSON objects and byte escaping of dead letters
 * (see dq_format.h). */
#include "dq_format.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "pw_time.h"

void dq_format_quoted(FILE *out, const void *data, size_t len)
{
    const unsigned char *p = data;
    fputc('"', out);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = p[i];
        if (c == '"' || c == '\\') {
            fprintf(out, "\\%c", c);
        } else if (c == '\n') {
            fputs("\\n", out);
        } else if (c == '\r') {
            fputs("\\r", out);
        } else if (c == '\t') {
            fputs("\\t", out);
        } else if (c < 0x20 || c >= 0x7f) {
            fprintf(out, "\\x%02x", c);
        } else {
            fputc(c, out);
        }
    }
    fputc('"', out);
}

static void dq_format_time(int64_t ms, char out[PW_RFC3339_LEN])
{
    if (ms < 0) {
        snprintf(out, PW_RFC3339_LEN, "-");
    } else {
        pw_time_format_rfc3339(ms, out);
    }
}

static void dq_format_word(FILE *out, const char *s)
{
    if (s == NULL || s[0] == '\0') {
        fputc('-', out);
    } else if (strpbrk(s, " \t\r\n\"\\") != NULL) {
        dq_format_quoted(out, s, strlen(s));
    } else {
        fputs(s, out);
    }
}

void dq_format_text(FILE *out, const dq_letter *l)
{
    char when[PW_RFC3339_LEN], origin[320];
    dq_format_time(l->time_ms, when);
    dq_letter_origin(l, origin, sizeof origin);
    fprintf(out, "%" PRId32 ":%" PRId64 " %s ", l->partition, l->offset, when);
    dq_format_word(out, l->reason);
    fputc(' ', out);
    if (l->detail == NULL) {
        fputc('-', out);
    } else {
        dq_format_quoted(out, l->detail, strlen(l->detail));
    }
    fprintf(out, " %s key=", origin);
    if (l->key == NULL) {
        fputc('-', out);
    } else {
        dq_format_quoted(out, l->key, l->key_len);
    }
    fputc('\n', out);
}

/* A JSON string of s, or null when s is NULL; invalid UTF-8 is shown escaped. */
static json_t *dq_json_text(const char *s)
{
    if (s == NULL) {
        return json_null();
    }
    json_t *j = json_string(s);
    if (j != NULL) {
        return j;
    }
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    if (f == NULL) {
        return NULL;
    }
    dq_format_quoted(f, s, strlen(s));
    fclose(f);
    j = n >= 2 ? json_stringn(buf + 1, n - 2) : NULL;
    free(buf);
    return j;
}

static json_t *dq_json_hex(const void *data, size_t len)
{
    static const char digits[] = "0123456789abcdef";
    char *hex = malloc(len * 2 + 1);
    if (hex == NULL) {
        return NULL;
    }
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        hex[2 * i] = digits[p[i] >> 4];
        hex[2 * i + 1] = digits[p[i] & 0x0f];
    }
    json_t *j = json_stringn(hex, len * 2);
    free(hex);
    return j;
}

/* "key" as a string (UTF-8), or null plus "key_hex". */
static int dq_json_key(json_t *o, const dq_letter *l)
{
    if (l->key == NULL) {
        return json_object_set_new(o, "key", json_null());
    }
    json_t *k = json_stringn(l->key, l->key_len);
    if (k != NULL) {
        return json_object_set_new(o, "key", k);
    }
    if (json_object_set_new(o, "key", json_null()) != 0) {
        return -1;
    }
    return json_object_set_new(o, "key_hex", dq_json_hex(l->key, l->key_len));
}

static json_t *dq_json_num_or_null(int64_t n)
{
    return n < 0 ? json_null() : json_integer((json_int_t)n);
}

static int dq_json_source(json_t *o, const dq_letter *l)
{
    char origin[320];
    dq_letter_origin(l, origin, sizeof origin);
    int rc = json_object_set_new(o, "origin", l->source_topic ? json_string(origin) : json_null());
    rc |= json_object_set_new(o, "source_topic", dq_json_text(l->source_topic));
    rc |= json_object_set_new(o, "source_partition", dq_json_num_or_null(l->source_partition));
    rc |= json_object_set_new(o, "source_offset", dq_json_num_or_null(l->source_offset));
    return rc;
}

json_t *dq_format_json(const dq_letter *l)
{
    char when[PW_RFC3339_LEN];
    dq_format_time(l->time_ms, when);
    json_t *o = json_object();
    if (o == NULL) {
        return NULL;
    }
    int rc = json_object_set_new(o, "dlq_partition", json_integer(l->partition));
    rc |= json_object_set_new(o, "dlq_offset", json_integer((json_int_t)l->offset));
    rc |= json_object_set_new(o, "time", l->time_ms < 0 ? json_null() : json_string(when));
    rc |= json_object_set_new(o, "time_ms", dq_json_num_or_null(l->time_ms));
    rc |= json_object_set_new(o, "reason", dq_json_text(l->reason));
    rc |= json_object_set_new(o, "detail", dq_json_text(l->detail));
    rc |= dq_json_source(o, l);
    rc |= dq_json_key(o, l);
    rc |= json_object_set_new(o, "value_bytes", json_integer((json_int_t)l->value_len));
    if (l->replayed_from != NULL) {
        rc |= json_object_set_new(o, "replayed_from", dq_json_text(l->replayed_from));
    }
    if (rc != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

int dq_format_json_line(FILE *out, const dq_letter *l)
{
    json_t *o = dq_format_json(l);
    if (o == NULL) {
        return -1;
    }
    int rc = json_dumpf(o, out, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(o);
    if (rc != 0 || fputc('\n', out) == EOF) {
        return -1;
    }
    return 0;
}
