/* ex_fetch: the libcurl transfer, record counting and progress line. */
#include "ex_fetch.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "pw_time.h"

#define EX_ERROR_BODY_MAX (64u * 1024)
#define EX_PROGRESS_US 500000

void ex_count_feed(ex_count *c, const char *data, size_t len)
{
    c->bytes += len;
    for (size_t i = 0; i < len; i++) {
        if (c->csv && data[i] == '"') {
            c->in_quotes = !c->in_quotes;
        } else if (data[i] == '\n' && !c->in_quotes) {
            c->lines++;
        }
    }
}

uint64_t ex_count_rows(const ex_count *c)
{
    return c->csv && c->lines > 0 ? c->lines - 1 : c->lines;
}

/* Appends "&name=<escaped value>" when value is set. */
static int ex_fetch_param(CURL *h, char **url, const char *name, const char *value)
{
    if (value == NULL) {
        return 0;
    }
    char *esc = curl_easy_escape(h, value, 0);
    if (esc == NULL) {
        return -1;
    }
    size_t need = strlen(*url) + strlen(name) + strlen(esc) + 3;
    char *next = realloc(*url, need);
    if (next != NULL) {
        strcat(next, strchr(next, '?') ? "&" : "?");
        strcat(next, name);
        strcat(next, "=");
        strcat(next, esc);
        *url = next;
    }
    curl_free(esc);
    return next ? 0 : -1;
}

char *ex_fetch_url(const char *base, const ex_args *a)
{
    CURL *h = curl_easy_init();
    size_t blen = strlen(base);
    while (blen > 0 && base[blen - 1] == '/') {
        blen--;
    }
    char *url = h ? malloc(blen + 32) : NULL;
    if (url == NULL) {
        curl_easy_cleanup(h);
        return NULL;
    }
    snprintf(url, blen + 32, "%.*s/v1/export/%s", (int)blen, base, a->kind);
    const char *names[] = {"format", "device", "zone", "type", "severity", "from", "to"};
    const char *values[] = {
        a->format ? a->format : "csv", a->device, a->zone, a->type, a->severity, a->from, a->to};
    int rc = 0;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]) && rc == 0; i++) {
        rc = ex_fetch_param(h, &url, names[i], values[i]);
    }
    curl_easy_cleanup(h);
    if (rc != 0) {
        free(url);
        return NULL;
    }
    return url;
}

typedef struct {
    CURL *h;
    FILE *out;
    FILE *err;
    int quiet;
    int status;      /* HTTP status, once known */
    int write_error; /* writing out failed */
    ex_count count;
    char *error_body; /* a refusal's body, bounded */
    size_t error_len;
    int64_t start_us;
    int64_t shown_us;
} ex_transfer;

static void ex_fetch_progress(ex_transfer *t, int final)
{
    int64_t now = pw_monotonic_us();
    if (t->quiet || (!final && now - t->shown_us < EX_PROGRESS_US)) {
        return;
    }
    t->shown_us = now;
    double secs = (double)(now - t->start_us) / 1e6;
    uint64_t rows = ex_count_rows(&t->count);
    fprintf(t->err, "\rexport: %llu rows, %.1f MiB, %.0f rows/s%s", (unsigned long long)rows,
            (double)t->count.bytes / (1024.0 * 1024.0), secs > 0 ? (double)rows / secs : 0.0,
            final ? "\n" : "");
    fflush(t->err);
}

static size_t ex_fetch_write(char *data, size_t size, size_t n, void *cls)
{
    ex_transfer *t = cls;
    size_t len = size * n;
    if (t->status == 0) {
        long code = 0;
        curl_easy_getinfo(t->h, CURLINFO_RESPONSE_CODE, &code);
        t->status = (int)code;
    }
    if (t->status != 200) {
        size_t keep = EX_ERROR_BODY_MAX - t->error_len;
        keep = len < keep ? len : keep;
        char *b = realloc(t->error_body, t->error_len + keep + 1);
        if (b != NULL) {
            memcpy(b + t->error_len, data, keep);
            t->error_len += keep;
            b[t->error_len] = '\0';
            t->error_body = b;
        }
        return len;
    }
    if (fwrite(data, 1, len, t->out) != len) {
        t->write_error = 1;
        return 0; /* ends the transfer */
    }
    ex_count_feed(&t->count, data, len);
    ex_fetch_progress(t, 0);
    return len;
}

/* Prints the service's refusal: its error message when the body is one. */
static void ex_fetch_refusal(const ex_transfer *t)
{
    json_t *body = t->error_body ? json_loads(t->error_body, 0, NULL) : NULL;
    json_t *e = json_object_get(body, "error");
    const char *msg = json_string_value(json_object_get(e ? e : body, "message"));
    fprintf(t->err, "plantwatch-export: HTTP %d: %s\n", t->status,
            msg ? msg : (t->error_body ? t->error_body : "(no body)"));
    json_decref(body);
}

static int ex_fetch_outcome(ex_transfer *t, CURLcode rc)
{
    ex_fetch_progress(t, 1);
    if (t->write_error) {
        fprintf(t->err, "plantwatch-export: cannot write the output\n");
        return EX_EXIT_OUTPUT;
    }
    if (rc == CURLE_OK && t->status != 200) {
        ex_fetch_refusal(t);
        return EX_EXIT_REFUSED;
    }
    if (rc != CURLE_OK) {
        fprintf(t->err, "plantwatch-export: transfer failed after %llu rows: %s\n",
                (unsigned long long)ex_count_rows(&t->count), curl_easy_strerror(rc));
        return EX_EXIT_CUT;
    }
    if (fflush(t->out) != 0) {
        fprintf(t->err, "plantwatch-export: cannot write the output\n");
        return EX_EXIT_OUTPUT;
    }
    return EX_EXIT_OK;
}

int ex_fetch_run(const char *url, const char *key, FILE *out, FILE *err, int quiet, int csv)
{
    ex_transfer t;
    memset(&t, 0, sizeof(t));
    t.out = out;
    t.err = err;
    t.quiet = quiet;
    t.count.csv = csv;
    t.start_us = t.shown_us = pw_monotonic_us();
    t.h = curl_easy_init();
    if (t.h == NULL) {
        fprintf(err, "plantwatch-export: cannot start libcurl\n");
        return EX_EXIT_CUT;
    }
    struct curl_slist *headers = NULL;
    char hdr[600];
    if (key[0] != '\0') {
        snprintf(hdr, sizeof(hdr), "apikey: %s", key);
        headers = curl_slist_append(headers, hdr);
    }
    curl_easy_setopt(t.h, CURLOPT_URL, url);
    curl_easy_setopt(t.h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(t.h, CURLOPT_WRITEFUNCTION, ex_fetch_write);
    curl_easy_setopt(t.h, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(t.h, CURLOPT_USERAGENT, "plantwatch-export/" PW_VERSION);
    curl_easy_setopt(t.h, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(t.h, CURLOPT_NOSIGNAL, 1L);
    CURLcode rc = curl_easy_perform(t.h);
    if (t.status == 0) {
        long code = 0;
        curl_easy_getinfo(t.h, CURLINFO_RESPONSE_CODE, &code);
        t.status = (int)code;
    }
    int status = ex_fetch_outcome(&t, rc);
    curl_slist_free_all(headers);
    curl_easy_cleanup(t.h);
    free(t.error_body);
    return status;
}
