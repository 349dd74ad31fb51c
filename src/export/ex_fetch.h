/* ex_fetch: one export download with libcurl — the request URL from the
 * arguments, the transfer into a FILE, the progress line on stderr (at most
 * every 0.5 s) and the outcome as an exit status (ex_args.h). */
#ifndef EX_FETCH_H
#define EX_FETCH_H

#include <stdint.h>
#include <stdio.h>

#include "ex_args.h"

/* Rows and bytes of the body seen so far (CSV: records outside quotes,
 * header excluded; NDJSON: lines). */
typedef struct {
    uint64_t bytes;
    uint64_t lines;
    int in_quotes; /* CSV: inside a quoted field */
    int csv;
} ex_count;

/* Counts the records of data[0..len) into c. */
void ex_count_feed(ex_count *c, const char *data, size_t len);
/* Rows counted (CSV: without the header). */
uint64_t ex_count_rows(const ex_count *c);

/* The URL of a's export at base (e.g. http://127.0.0.1:8000), query values
 * percent-encoded; malloc'd (caller frees), NULL on ENOMEM. */
char *ex_fetch_url(const char *base, const ex_args *a);

/* Downloads url (key: apikey header value, "" = none) into out; progress on
 * err unless quiet. Returns an EX_EXIT_* status; a refusal's error message
 * is printed to err. */
int ex_fetch_run(const char *url, const char *key, FILE *out, FILE *err, int quiet, int csv);

#endif
