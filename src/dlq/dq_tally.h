/* dq_tally: counts of dead letters by reason, for the summary that ends
 * `list`. Owns its reason strings. */
#ifndef DQ_TALLY_H
#define DQ_TALLY_H

#include <stddef.h>
#include <stdio.h>

typedef struct {
    char *reason; /* heap copy, owned by the tally */
    long count;
} dq_tally_entry;

typedef struct {
    dq_tally_entry *items; /* heap, owned; insertion order */
    size_t len, cap;
    long total;
} dq_tally;

void dq_tally_init(dq_tally *t);
void dq_tally_free(dq_tally *t);

/* Counts one dead letter; reason NULL counts as "-". 0, or -1 when out of memory. */
int dq_tally_add(dq_tally *t, const char *reason);

/* Count of one reason (0 when never seen). */
long dq_tally_count(const dq_tally *t, const char *reason);

/* Sorts by count (largest first), then reason. */
void dq_tally_sort(dq_tally *t);

/* "by reason:" then one "  <reason>  <count>" line per reason, largest first
 * (sorts t). */
void dq_tally_print(dq_tally *t, FILE *out);

#endif
