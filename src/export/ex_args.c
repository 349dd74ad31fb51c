/* ex_args: command-line parsing and help of plantwatch-export. */
#include "ex_args.h"

#include <string.h>

void ex_args_help(FILE *out)
{
    fputs("usage: plantwatch-export readings|alerts [--zone Z] [--device D] [--type T]\n"
          "                         [--severity S] [--from F] [--to T] [--format csv|ndjson]\n"
          "                         [-o FILE] [-q]\n"
          "\n"
          "Downloads the stored readings or alerts of [from, to) from the metrics API\n"
          "(GET /v1/export/readings or /v1/export/alerts) as CSV (RFC 4180, a header row)\n"
          "or NDJSON, streamed, into FILE (written as FILE.part, renamed when complete)\n"
          "or stdout. A progress line (rows, bytes, rate) goes to stderr.\n"
          "\n"
          "  --zone Z, --device D  only this zone / device (the stored, lower-case form)\n"
          "  --type T              readings only: only this reading type\n"
          "  --severity S          alerts only: info, warning or critical\n"
          "  --from F, --to T      RFC 3339 (2026-12-01T10:00:00Z) or epoch milliseconds;\n"
          "                        to defaults to now, from to to - 24 h; at most 31 days\n"
          "  --format csv|ndjson   csv by default\n"
          "  -o FILE               write to FILE instead of stdout\n"
          "  -q                    no progress line\n"
          "  --help, --version\n"
          "\n"
          "Environment: PW_METRICS_URL (default http://127.0.0.1:8000, the gateway),\n"
          "PW_READ_KEY_FILE or PW_READ_KEY (a read key; a key file of `name key` lines\n"
          "gives its first key).\n"
          "\n"
          "Exit status: 0 complete, 1 the service refused (its error is printed),\n"
          "2 usage or configuration, 3 the connection failed or the stream ended early\n"
          "(the output is incomplete and FILE is not written), 4 the output could not be\n"
          "written.\n",
          out);
}

typedef struct {
    const char *name;
    size_t offset; /* of the const char * member in ex_args */
} ex_option;

static const ex_option ex_options[] = {
    {"--zone", offsetof(ex_args, zone)},     {"--device", offsetof(ex_args, device)},
    {"--type", offsetof(ex_args, type)},     {"--severity", offsetof(ex_args, severity)},
    {"--from", offsetof(ex_args, from)},     {"--to", offsetof(ex_args, to)},
    {"--format", offsetof(ex_args, format)}, {"-o", offsetof(ex_args, output)},
    {"--output", offsetof(ex_args, output)},
};

static const ex_option *ex_args_find(const char *name)
{
    for (size_t i = 0; i < sizeof(ex_options) / sizeof(ex_options[0]); i++) {
        if (strcmp(ex_options[i].name, name) == 0) {
            return &ex_options[i];
        }
    }
    return NULL;
}

static int ex_args_check(const ex_args *a, char *err, size_t errlen)
{
    if (a->kind == NULL) {
        snprintf(err, errlen, "say what to export: readings or alerts");
        return EX_PARSE_ERROR;
    }
    if (a->type != NULL && strcmp(a->kind, "readings") != 0) {
        snprintf(err, errlen, "--type applies to readings only");
        return EX_PARSE_ERROR;
    }
    if (a->severity != NULL && strcmp(a->kind, "alerts") != 0) {
        snprintf(err, errlen, "--severity applies to alerts only");
        return EX_PARSE_ERROR;
    }
    if (a->format != NULL && strcmp(a->format, "csv") != 0 && strcmp(a->format, "ndjson") != 0) {
        snprintf(err, errlen, "--format must be csv or ndjson");
        return EX_PARSE_ERROR;
    }
    return EX_PARSE_OK;
}

int ex_args_parse(int argc, char **argv, ex_args *a, char *err, size_t errlen)
{
    memset(a, 0, sizeof(*a));
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            return EX_PARSE_HELP;
        }
        if (strcmp(arg, "-q") == 0 || strcmp(arg, "--quiet") == 0) {
            a->quiet = 1;
            continue;
        }
        const ex_option *o = ex_args_find(arg);
        if (o != NULL) {
            if (i + 1 >= argc) {
                snprintf(err, errlen, "%s needs a value", arg);
                return EX_PARSE_ERROR;
            }
            *(const char **)((char *)a + o->offset) = argv[++i];
            continue;
        }
        if (arg[0] == '-') {
            snprintf(err, errlen, "unknown option %.64s", arg);
            return EX_PARSE_ERROR;
        }
        if (a->kind != NULL || (strcmp(arg, "readings") != 0 && strcmp(arg, "alerts") != 0)) {
            snprintf(err, errlen, "unexpected argument %.64s (readings or alerts, once)", arg);
            return EX_PARSE_ERROR;
        }
        a->kind = arg;
    }
    return ex_args_check(a, err, errlen);
}
