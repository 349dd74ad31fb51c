/* dq_args: the command line of plantwatch-dlq. Owns the subcommands (list,
 * replay), their options, validation and the --help texts. Parsing never
 * prints or exits: errors come back as a message for main to show. */
#ifndef DQ_ARGS_H
#define DQ_ARGS_H

#include <stddef.h>
#include <stdio.h>

#define DQ_EXIT_OK 0
#define DQ_EXIT_FAIL 1
#define DQ_EXIT_USAGE 2
#define DQ_EXIT_INTERRUPTED 130

typedef enum { DQ_CMD_NONE = 0, DQ_CMD_LIST, DQ_CMD_REPLAY } dq_cmd;

typedef enum { DQ_PARSE_ERROR = -1, DQ_PARSE_OK = 0, DQ_PARSE_HELP = 1 } dq_parse;

typedef struct {
    dq_cmd cmd;
    const char *reason; /* --reason: borrowed from argv (lives as long as argv); NULL = any */
    const char *topic;  /* --topic: source topic; borrowed from argv; NULL = any */
    long limit;         /* --limit: at most this many selected dead letters; 0 = all */
    int json;           /* --json (list): NDJSON on stdout */
    int dry_run;        /* --dry-run (replay): show, publish nothing */
} dq_args;

/* argv[0] is the program, argv[1] the subcommand. DQ_PARSE_HELP for --help
 * (a->cmd tells whose help), DQ_PARSE_ERROR with a message in err. */
int dq_args_parse(int argc, char **argv, dq_args *a, char *err, size_t errlen);

/* The overview (no or an unknown subcommand) and one subcommand's help. */
void dq_args_usage(FILE *out);
void dq_args_help(dq_cmd cmd, FILE *out);

#endif
