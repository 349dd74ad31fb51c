/* pw_prom: a small thread-safe Prometheus metrics registry (counters, gauges,
 * histograms with labels) rendered in the text exposition format. */
#ifndef PW_PROM_H
#define PW_PROM_H

#include <stddef.h>

typedef struct pw_prom pw_prom;
typedef struct pw_prom_family pw_prom_family;

pw_prom *pw_prom_new(void);
void pw_prom_free(pw_prom *p);

/* label_names: comma-separated ("route,method,status") or NULL for none.
 * The registry owns the families; register them before serving. */
pw_prom_family *pw_prom_counter(pw_prom *p, const char *name, const char *help,
                                const char *label_names);
pw_prom_family *pw_prom_gauge(pw_prom *p, const char *name, const char *help,
                              const char *label_names);
/* bounds: ascending upper bounds (the +Inf bucket is implicit). */
pw_prom_family *pw_prom_histogram(pw_prom *p, const char *name, const char *help,
                                  const char *label_names, const double *bounds, size_t nbounds);
/* A gauge whose value is read from fn(ctx) at render time. */
void pw_prom_gauge_fn(pw_prom *p, const char *name, const char *help, double (*fn)(void *ctx),
                      void *ctx);

/* label_values: one string per label name, NULL when the family has none. */
void pw_prom_add(pw_prom_family *f, const char *const *label_values, double v);
void pw_prom_set(pw_prom_family *f, const char *const *label_values, double v);
void pw_prom_observe(pw_prom_family *f, const char *const *label_values, double v);

/* Drops the series with these label values (no-op when absent), e.g. a
 * per-partition series when the partition is no longer owned. */
void pw_prom_remove(pw_prom_family *f, const char *const *label_values);

/* Current value of a counter/gauge series (0 if absent); for tests. */
double pw_prom_value(pw_prom_family *f, const char *const *label_values);

/* Text exposition format; caller frees. */
char *pw_prom_render(pw_prom *p);

#endif
