/* ex_args: the command line of plantwatch-export — the kind (readings,
 * alerts), the filters, window, format and output file — and its --help.
 * Parsing never prints or exits: errors come back as a message. */
#ifndef EX_ARGS_H
#define EX_ARGS_H

#include <stddef.h>
#include <stdio.h>

/* Exit status of plantwatch-export (documented in --help and operations.md). */
#define EX_EXIT_OK 0
#define EX_EXIT_REFUSED 1 /* the service answered an error (400, 401, 403, 503, ...) */
#define EX_EXIT_USAGE 2   /* bad command line or configuration */
#define EX_EXIT_CUT 3     /* the connection failed or the stream ended early */
#define EX_EXIT_OUTPUT 4  /* the output file could not be written */

typedef enum { EX_PARSE_ERROR = -1, EX_PARSE_OK = 0, EX_PARSE_HELP = 1 } ex_parse;

/* Every string is borrowed from argv (lives as long as argv); NULL = not given. */
typedef struct {
    const char *kind; /* "readings" or "alerts" */
    const char *zone;
    const char *device;
    const char *type;     /* readings only */
    const char *severity; /* alerts only */
    const char *from;
    const char *to;
    const char *format; /* "csv" (default) or "ndjson" */
    const char *output; /* -o FILE; NULL = stdout */
    int quiet;          /* -q: no progress line */
} ex_args;

/* argv[0] is the program. EX_PARSE_HELP for --help, EX_PARSE_ERROR with err. */
int ex_args_parse(int argc, char **argv, ex_args *a, char *err, size_t errlen);

void ex_args_help(FILE *out);

#endif
