/* pw_prom: owns the Prometheus metrics registry — families of counters,
 * gauges, callback gauges and histograms, each series keyed by its label
 * values in a small hash table guarded by the family's mutex, and rendering
 * in the text exposition format (version 0.0.4). */
#include "pw_prom.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PW_PROM_BUCKETS 64 /* hash buckets per family */

typedef enum { PW_PROM_COUNTER, PW_PROM_GAUGE, PW_PROM_GAUGE_FN, PW_PROM_HISTOGRAM } pw_prom_type;

typedef struct pw_prom_series {
    struct pw_prom_series *hash_next;
    struct pw_prom_series *next; /* insertion order, for rendering */
    uint64_t hash;
    char **values;
    double value;     /* counter / gauge */
    uint64_t *counts; /* histogram: per bucket (not cumulative), nbounds + 1 */
    double sum;
    uint64_t count;
} pw_prom_series;

struct pw_prom_family {
    struct pw_prom_family *next;
    pw_prom_type type;
    char *name;
    char *help;
    char **label_names;
    size_t nlabels;
    double *bounds;
    size_t nbounds;
    double (*fn)(void *ctx);
    void *fn_ctx;
    pthread_mutex_t mu;
    pw_prom_series *buckets[PW_PROM_BUCKETS];
    pw_prom_series *first, *last;
};

struct pw_prom {
    pthread_mutex_t mu;
    pw_prom_family *first, *last;
};

pw_prom *pw_prom_new(void)
{
    pw_prom *p = calloc(1, sizeof *p);
    if (p != NULL) {
        pthread_mutex_init(&p->mu, NULL);
    }
    return p;
}

static void pw_prom_series_free(pw_prom_series *s, size_t nlabels)
{
    for (size_t i = 0; i < nlabels; i++) {
        free(s->values[i]);
    }
    free(s->values);
    free(s->counts);
    free(s);
}

static void pw_prom_family_free(pw_prom_family *f)
{
    pw_prom_series *s = f->first;
    while (s != NULL) {
        pw_prom_series *n = s->next;
        pw_prom_series_free(s, f->nlabels);
        s = n;
    }
    for (size_t i = 0; i < f->nlabels; i++) {
        free(f->label_names[i]);
    }
    free(f->label_names);
    free(f->bounds);
    free(f->name);
    free(f->help);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

void pw_prom_free(pw_prom *p)
{
    if (p == NULL) {
        return;
    }
    pw_prom_family *f = p->first;
    while (f != NULL) {
        pw_prom_family *n = f->next;
        pw_prom_family_free(f);
        f = n;
    }
    pthread_mutex_destroy(&p->mu);
    free(p);
}

/* ---- series lookup ------------------------------------------------------- */

static uint64_t pw_prom_hash(const char *const *values, size_t n)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        for (const unsigned char *c = (const unsigned char *)values[i]; *c; c++) {
            h = (h ^ *c) * 1099511628211ULL;
        }
        h = (h ^ 0x1f) * 1099511628211ULL;
    }
    return h;
}

static int pw_prom_values_equal(char *const *a, const char *const *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(a[i], b[i]) != 0) {
            return 0;
        }
    }
    return 1;
}

/* Finds or creates the series for values; call with f->mu held. */
static pw_prom_series *pw_prom_series_get(pw_prom_family *f, const char *const *values, int create)
{
    static const char *const none[1] = {""};
    if (f->nlabels == 0) {
        values = none;
    }
    for (size_t i = 0; i < f->nlabels; i++) {
        if (values == NULL || values[i] == NULL) {
            return NULL;
        }
    }
    uint64_t h = pw_prom_hash(values, f->nlabels);
    pw_prom_series **slot = &f->buckets[h % PW_PROM_BUCKETS];
    for (pw_prom_series *s = *slot; s != NULL; s = s->hash_next) {
        if (s->hash == h && pw_prom_values_equal(s->values, values, f->nlabels)) {
            return s;
        }
    }
    if (!create) {
        return NULL;
    }

    pw_prom_series *s = calloc(1, sizeof *s);
    if (s == NULL) {
        return NULL;
    }
    s->hash = h;
    s->values = calloc(f->nlabels ? f->nlabels : 1, sizeof *s->values);
    if (f->type == PW_PROM_HISTOGRAM) {
        s->counts = calloc(f->nbounds + 1, sizeof *s->counts);
    }
    int failed = s->values == NULL || (f->type == PW_PROM_HISTOGRAM && s->counts == NULL);
    for (size_t i = 0; !failed && i < f->nlabels; i++) {
        s->values[i] = strdup(values[i]);
        failed = s->values[i] == NULL;
    }
    if (failed) {
        if (s->values != NULL) {
            pw_prom_series_free(s, f->nlabels);
        } else {
            free(s);
        }
        return NULL;
    }
    s->hash_next = *slot;
    *slot = s;
    if (f->last) {
        f->last->next = s;
    } else {
        f->first = s;
    }
    f->last = s;
    return s;
}

/* ---- registration -------------------------------------------------------- */

static int pw_prom_split_labels(pw_prom_family *f, const char *label_names)
{
    if (label_names == NULL || label_names[0] == '\0') {
        return 0;
    }
    size_t n = 1;
    for (const char *c = label_names; *c; c++) {
        n += *c == ',';
    }
    f->label_names = calloc(n, sizeof *f->label_names);
    if (f->label_names == NULL) {
        return -1;
    }
    const char *start = label_names;
    for (size_t i = 0; i < n; i++) {
        const char *end = strchr(start, ',');
        size_t len = end ? (size_t)(end - start) : strlen(start);
        while (len > 0 && *start == ' ') {
            start++;
            len--;
        }
        while (len > 0 && start[len - 1] == ' ') {
            len--;
        }
        f->label_names[i] = strndup(start, len);
        if (f->label_names[i] == NULL) {
            return -1;
        }
        f->nlabels = i + 1;
        start = end ? end + 1 : start + len;
    }
    return 0;
}

typedef struct {
    const double *bounds;
    size_t nbounds;
    double (*fn)(void *ctx);
    void *fn_ctx;
} pw_prom_extra;

static pw_prom_family *pw_prom_register(pw_prom *p, pw_prom_type type, const char *name,
                                        const char *help, const char *label_names,
                                        const pw_prom_extra *extra)
{
    const double *bounds = extra ? extra->bounds : NULL;
    size_t nbounds = extra ? extra->nbounds : 0;
    if (p == NULL || name == NULL) {
        return NULL;
    }
    pthread_mutex_lock(&p->mu);
    for (pw_prom_family *f = p->first; f != NULL; f = f->next) {
        if (strcmp(f->name, name) == 0) {
            pthread_mutex_unlock(&p->mu);
            return f->type == type ? f : NULL;
        }
    }
    pw_prom_family *f = calloc(1, sizeof *f);
    if (f == NULL) {
        pthread_mutex_unlock(&p->mu);
        return NULL;
    }
    pthread_mutex_init(&f->mu, NULL);
    f->type = type;
    f->fn = extra ? extra->fn : NULL;
    f->fn_ctx = extra ? extra->fn_ctx : NULL;
    f->name = strdup(name);
    f->help = strdup(help ? help : "");
    int failed = f->name == NULL || f->help == NULL || pw_prom_split_labels(f, label_names) != 0;
    if (!failed && nbounds > 0) {
        f->bounds = malloc(nbounds * sizeof *f->bounds);
        failed = f->bounds == NULL;
        if (!failed) {
            memcpy(f->bounds, bounds, nbounds * sizeof *f->bounds);
            f->nbounds = nbounds;
        }
    }
    /* An unlabelled series exists from the start, so it renders as 0. */
    if (!failed && f->nlabels == 0 && type != PW_PROM_GAUGE_FN) {
        failed = pw_prom_series_get(f, NULL, 1) == NULL;
    }
    if (failed) {
        pw_prom_family_free(f);
        pthread_mutex_unlock(&p->mu);
        return NULL;
    }
    if (p->last) {
        p->last->next = f;
    } else {
        p->first = f;
    }
    p->last = f;
    pthread_mutex_unlock(&p->mu);
    return f;
}

pw_prom_family *pw_prom_counter(pw_prom *p, const char *name, const char *help,
                                const char *label_names)
{
    return pw_prom_register(p, PW_PROM_COUNTER, name, help, label_names, NULL);
}

pw_prom_family *pw_prom_gauge(pw_prom *p, const char *name, const char *help,
                              const char *label_names)
{
    return pw_prom_register(p, PW_PROM_GAUGE, name, help, label_names, NULL);
}

pw_prom_family *pw_prom_histogram(pw_prom *p, const char *name, const char *help,
                                  const char *label_names, const double *bounds, size_t nbounds)
{
    pw_prom_extra extra = {bounds, nbounds, NULL, NULL};
    return pw_prom_register(p, PW_PROM_HISTOGRAM, name, help, label_names, &extra);
}

void pw_prom_gauge_fn(pw_prom *p, const char *name, const char *help, double (*fn)(void *ctx),
                      void *ctx)
{
    pw_prom_extra extra = {NULL, 0, fn, ctx};
    (void)pw_prom_register(p, PW_PROM_GAUGE_FN, name, help, NULL, &extra);
}

/* ---- updates ------------------------------------------------------------- */

void pw_prom_add(pw_prom_family *f, const char *const *label_values, double v)
{
    if (f == NULL || (f->type != PW_PROM_COUNTER && f->type != PW_PROM_GAUGE)) {
        return;
    }
    if (f->type == PW_PROM_COUNTER && !(v >= 0)) {
        return; /* counters only go up */
    }
    pthread_mutex_lock(&f->mu);
    pw_prom_series *s = pw_prom_series_get(f, label_values, 1);
    if (s != NULL) {
        s->value += v;
    }
    pthread_mutex_unlock(&f->mu);
}

void pw_prom_set(pw_prom_family *f, const char *const *label_values, double v)
{
    if (f == NULL || f->type != PW_PROM_GAUGE) {
        return;
    }
    pthread_mutex_lock(&f->mu);
    pw_prom_series *s = pw_prom_series_get(f, label_values, 1);
    if (s != NULL) {
        s->value = v;
    }
    pthread_mutex_unlock(&f->mu);
}

void pw_prom_observe(pw_prom_family *f, const char *const *label_values, double v)
{
    if (f == NULL || f->type != PW_PROM_HISTOGRAM || isnan(v)) {
        return;
    }
    size_t b = 0;
    while (b < f->nbounds && v > f->bounds[b]) {
        b++;
    }
    pthread_mutex_lock(&f->mu);
    pw_prom_series *s = pw_prom_series_get(f, label_values, 1);
    if (s != NULL) {
        s->counts[b]++;
        s->sum += v;
        s->count++;
    }
    pthread_mutex_unlock(&f->mu);
}

/* Unlinks s from its hash chain and the rendering order; call with f->mu held. */
static void pw_prom_series_unlink(pw_prom_family *f, pw_prom_series *s)
{
    pw_prom_series **slot = &f->buckets[s->hash % PW_PROM_BUCKETS];
    while (*slot != s) {
        slot = &(*slot)->hash_next;
    }
    *slot = s->hash_next;
    pw_prom_series *prev = NULL;
    for (pw_prom_series *x = f->first; x != s; x = x->next) {
        prev = x;
    }
    if (prev) {
        prev->next = s->next;
    } else {
        f->first = s->next;
    }
    if (f->last == s) {
        f->last = prev;
    }
}

void pw_prom_remove(pw_prom_family *f, const char *const *label_values)
{
    if (f == NULL || f->type == PW_PROM_GAUGE_FN) {
        return;
    }
    pthread_mutex_lock(&f->mu);
    pw_prom_series *s = pw_prom_series_get(f, label_values, 0);
    if (s != NULL) {
        pw_prom_series_unlink(f, s);
        pw_prom_series_free(s, f->nlabels);
    }
    pthread_mutex_unlock(&f->mu);
}

double pw_prom_value(pw_prom_family *f, const char *const *label_values)
{
    if (f == NULL) {
        return 0;
    }
    if (f->type == PW_PROM_GAUGE_FN) {
        return f->fn ? f->fn(f->fn_ctx) : 0;
    }
    double v = 0;
    pthread_mutex_lock(&f->mu);
    pw_prom_series *s = pw_prom_series_get(f, label_values, 0);
    if (s != NULL) {
        v = f->type == PW_PROM_HISTOGRAM ? (double)s->count : s->value;
    }
    pthread_mutex_unlock(&f->mu);
    return v;
}

/* ---- rendering ----------------------------------------------------------- */

typedef struct {
    char *data;
    size_t len, cap;
    int failed;
} pw_prom_buf;

static void pw_prom_put(pw_prom_buf *b, const char *s, size_t n)
{
    if (b->failed) {
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t ncap = b->cap ? b->cap : 1024;
        while (b->len + n + 1 > ncap) {
            ncap *= 2;
        }
        char *nd = realloc(b->data, ncap);
        if (nd == NULL) {
            b->failed = 1;
            return;
        }
        b->data = nd;
        b->cap = ncap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void pw_prom_puts(pw_prom_buf *b, const char *s)
{
    pw_prom_put(b, s, strlen(s));
}

/* Shortest decimal that reads back as v; +Inf, -Inf, NaN per the format. */
static void pw_prom_format_double(double v, char out[32])
{
    if (isnan(v)) {
        strcpy(out, "NaN");
        return;
    }
    if (isinf(v)) {
        strcpy(out, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(out, 32, "%.*g", prec, v);
        if (strtod(out, NULL) == v) {
            return;
        }
    }
}

/* Escapes per the exposition format: backslash and newline always, the
 * double quote only inside label values. */
static void pw_prom_escaped(pw_prom_buf *b, const char *s, int quote)
{
    for (const char *c = s; *c; c++) {
        if (*c == '\\') {
            pw_prom_puts(b, "\\\\");
        } else if (*c == '\n') {
            pw_prom_puts(b, "\\n");
        } else if (*c == '"' && quote) {
            pw_prom_puts(b, "\\\"");
        } else {
            pw_prom_put(b, c, 1);
        }
    }
}

/* name{l1="v1",l2="v2"[,le="x"]} value\n */
static void pw_prom_sample(pw_prom_buf *b, const pw_prom_family *f, const char *suffix,
                           const pw_prom_series *s, const char *le, double v)
{
    char num[32];
    pw_prom_puts(b, f->name);
    pw_prom_puts(b, suffix);
    if (f->nlabels > 0 || le != NULL) {
        pw_prom_puts(b, "{");
        for (size_t i = 0; i < f->nlabels; i++) {
            if (i) {
                pw_prom_puts(b, ",");
            }
            pw_prom_puts(b, f->label_names[i]);
            pw_prom_puts(b, "=\"");
            pw_prom_escaped(b, s->values[i], 1);
            pw_prom_puts(b, "\"");
        }
        if (le != NULL) {
            pw_prom_puts(b, f->nlabels ? ",le=\"" : "le=\"");
            pw_prom_puts(b, le);
            pw_prom_puts(b, "\"");
        }
        pw_prom_puts(b, "}");
    }
    pw_prom_format_double(v, num);
    pw_prom_puts(b, " ");
    pw_prom_puts(b, num);
    pw_prom_puts(b, "\n");
}

static void pw_prom_render_histogram(pw_prom_buf *b, const pw_prom_family *f,
                                     const pw_prom_series *s)
{
    char le[32];
    uint64_t cumulative = 0;
    for (size_t i = 0; i < f->nbounds; i++) {
        cumulative += s->counts[i];
        pw_prom_format_double(f->bounds[i], le);
        pw_prom_sample(b, f, "_bucket", s, le, (double)cumulative);
    }
    pw_prom_sample(b, f, "_bucket", s, "+Inf", (double)s->count);
    pw_prom_sample(b, f, "_sum", s, NULL, s->sum);
    pw_prom_sample(b, f, "_count", s, NULL, (double)s->count);
}

static void pw_prom_render_family(pw_prom_buf *b, pw_prom_family *f)
{
    static const char *const type_names[] = {"counter", "gauge", "gauge", "histogram"};
    pw_prom_puts(b, "# HELP ");
    pw_prom_puts(b, f->name);
    pw_prom_puts(b, " ");
    pw_prom_escaped(b, f->help, 0);
    pw_prom_puts(b, "\n# TYPE ");
    pw_prom_puts(b, f->name);
    pw_prom_puts(b, " ");
    pw_prom_puts(b, type_names[f->type]);
    pw_prom_puts(b, "\n");
    if (f->type == PW_PROM_GAUGE_FN) {
        /* the callback runs outside the family lock: it may take its own locks */
        double v = f->fn ? f->fn(f->fn_ctx) : 0;
        pw_prom_sample(b, f, "", NULL, NULL, v);
        return;
    }
    pthread_mutex_lock(&f->mu);
    for (const pw_prom_series *s = f->first; s != NULL; s = s->next) {
        if (f->type == PW_PROM_HISTOGRAM) {
            pw_prom_render_histogram(b, f, s);
        } else {
            pw_prom_sample(b, f, "", s, NULL, s->value);
        }
    }
    pthread_mutex_unlock(&f->mu);
}

char *pw_prom_render(pw_prom *p)
{
    pw_prom_buf b = {0};
    pw_prom_puts(&b, "");
    if (p != NULL) {
        pthread_mutex_lock(&p->mu);
        for (pw_prom_family *f = p->first; f != NULL; f = f->next) {
            pw_prom_render_family(&b, f);
        }
        pthread_mutex_unlock(&p->mu);
    }
    if (b.failed) {
        free(b.data);
        return NULL;
    }
    return b.data;
}
