/* dq_args: parsing and validation of plantwatch-dlq's command line, and its
 * help texts (see dq_args.h). */
#include "dq_args.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *name;
    int takes_value;
    int list_ok;
    int replay_ok;
} dq_option;

static const dq_option dq_options[] = {
    {"--reason", 1, 1, 1}, {"--topic", 1, 1, 1},   {"--limit", 1, 1, 1},
    {"--json", 0, 1, 0},   {"--dry-run", 0, 0, 1},
};

static const char *dq_cmd_name(dq_cmd cmd)
{
    return cmd == DQ_CMD_REPLAY ? "replay" : "list";
}

static dq_cmd dq_cmd_of(const char *s)
{
    if (strcmp(s, "list") == 0) {
        return DQ_CMD_LIST;
    }
    if (strcmp(s, "replay") == 0) {
        return DQ_CMD_REPLAY;
    }
    return DQ_CMD_NONE;
}

/* The option named by arg ("--limit" or "--limit=5"); *inline_value points
 * after '=' when present. NULL when unknown. */
static const dq_option *dq_option_find(const char *arg, const char **inline_value)
{
    const char *eq = strchr(arg, '=');
    size_t n = eq ? (size_t)(eq - arg) : strlen(arg);
    *inline_value = eq ? eq + 1 : NULL;
    for (size_t i = 0; i < sizeof dq_options / sizeof dq_options[0]; i++) {
        if (strlen(dq_options[i].name) == n && strncmp(dq_options[i].name, arg, n) == 0) {
            return &dq_options[i];
        }
    }
    return NULL;
}

static int dq_parse_limit(const char *v, long *out, char *err, size_t errlen)
{
    char *end = NULL;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (v[0] < '0' || v[0] > '9' || errno != 0 || end == v || *end != '\0' || n < 1) {
        snprintf(err, errlen, "--limit: expected a positive integer, got \"%s\"", v);
        return -1;
    }
    *out = n;
    return 0;
}

static int dq_apply(dq_args *a, const dq_option *o, const char *v, char *err, size_t errlen)
{
    if (o->takes_value && v[0] == '\0') {
        snprintf(err, errlen, "%s: the value must not be empty", o->name);
        return -1;
    }
    if (strcmp(o->name, "--reason") == 0) {
        a->reason = v;
    } else if (strcmp(o->name, "--topic") == 0) {
        a->topic = v;
    } else if (strcmp(o->name, "--limit") == 0) {
        return dq_parse_limit(v, &a->limit, err, errlen);
    } else if (strcmp(o->name, "--json") == 0) {
        a->json = 1;
    } else {
        a->dry_run = 1;
    }
    return 0;
}

/* One option at argv[*i]; advances *i past a separate value. */
static int dq_parse_one(int argc, char **argv, int *i, dq_args *a, char *err, size_t errlen)
{
    const char *arg = argv[*i];
    const char *v = NULL;
    const dq_option *o = dq_option_find(arg, &v);
    if (o == NULL) {
        snprintf(err, errlen, "unknown %s \"%s\"", arg[0] == '-' ? "option" : "argument", arg);
        return -1;
    }
    int ok = a->cmd == DQ_CMD_LIST ? o->list_ok : o->replay_ok;
    if (!ok) {
        snprintf(err, errlen, "%s is not an option of %s", o->name, dq_cmd_name(a->cmd));
        return -1;
    }
    if (!o->takes_value && v != NULL) {
        snprintf(err, errlen, "%s takes no value", o->name);
        return -1;
    }
    if (o->takes_value && v == NULL) {
        if (*i + 1 >= argc) {
            snprintf(err, errlen, "%s needs a value", o->name);
            return -1;
        }
        *i += 1;
        v = argv[*i];
    }
    return dq_apply(a, o, v ? v : "", err, errlen);
}

static int dq_is_help(const char *s)
{
    return strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0 || strcmp(s, "help") == 0;
}

int dq_args_parse(int argc, char **argv, dq_args *a, char *err, size_t errlen)
{
    memset(a, 0, sizeof *a);
    if (argc < 2) {
        snprintf(err, errlen, "a subcommand is required (list or replay)");
        return DQ_PARSE_ERROR;
    }
    if (dq_is_help(argv[1])) {
        return DQ_PARSE_HELP;
    }
    a->cmd = dq_cmd_of(argv[1]);
    if (a->cmd == DQ_CMD_NONE) {
        snprintf(err, errlen, "unknown subcommand \"%s\" (list or replay)", argv[1]);
        return DQ_PARSE_ERROR;
    }
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            return DQ_PARSE_HELP;
        }
        if (dq_parse_one(argc, argv, &i, a, err, errlen) != 0) {
            return DQ_PARSE_ERROR;
        }
    }
    return DQ_PARSE_OK;
}

void dq_args_usage(FILE *out)
{
    fputs("usage: plantwatch-dlq list [--reason R] [--topic T] [--limit N] [--json]\n"
          "       plantwatch-dlq replay [--reason R] [--topic T] [--limit N] [--dry-run]\n"
          "\n"
          "  list    show the dead letters of the DLQ topic, from its start to its end at start\n"
          "  replay  publish selected dead letters again to their source topic\n"
          "\n"
          "plantwatch-dlq SUBCOMMAND --help shows a subcommand's options.\n",
          out);
}

static void dq_help_env(FILE *out)
{
    fputs("\nenvironment: PW_TOPIC_DLQ [sensor-dlq], PW_TOPIC_TELEMETRY [sensor-telemetry],\n"
          "  PW_TOPIC_ALERTS [sensor-alerts], PW_KAFKA_BOOTSTRAP, PW_KAFKA_USERNAME [consumer],\n"
          "  PW_KAFKA_PASSWORD_FILE or PW_KAFKA_PASSWORD, PW_KAFKA_CA_FILE (reading the DLQ);\n"
          "  PW_DLQ_REPLAY_USERNAME, PW_DLQ_REPLAY_PASSWORD_FILE or PW_DLQ_REPLAY_PASSWORD\n"
          "  (publishing; the reading credentials when unset)\n",
          out);
}

void dq_args_help(dq_cmd cmd, FILE *out)
{
    if (cmd == DQ_CMD_LIST) {
        fputs("usage: plantwatch-dlq list [--reason R] [--topic T] [--limit N] [--json]\n"
              "\n"
              "One line per dead letter, from the beginning of the DLQ topic to the end offsets\n"
              "it had at start: DLQ partition:offset, time, reason, detail, origin\n"
              "(source topic:partition:offset), key; then a count by reason.\n"
              "\n"
              "  --reason R  only dead letters with pw-dlq-reason R\n"
              "  --topic T   only dead letters from source topic T\n"
              "  --limit N   stop after N dead letters\n"
              "  --json      one JSON object per dead letter (NDJSON); the count goes to stderr\n",
              out);
    } else if (cmd == DQ_CMD_REPLAY) {
        fputs("usage: plantwatch-dlq replay [--reason R] [--topic T] [--limit N] [--dry-run]\n"
              "\n"
              "Publishes each selected dead letter to its source topic and partition byte for\n"
              "byte (key, value, original headers without pw-dlq-* and pw-source-*) with the\n"
              "header pw-dlq-replayed-from = DLQ partition:offset; acks=all, idempotent. Only\n"
              "the telemetry and alerts topics are accepted as targets. Exit status 1 when a\n"
              "delivery failed or a dead letter was refused.\n"
              "\n"
              "  --reason R  only dead letters with pw-dlq-reason R\n"
              "  --topic T   only dead letters from source topic T\n"
              "  --limit N   replay at most N dead letters\n"
              "  --dry-run   show what would be published, publish nothing\n",
              out);
    } else {
        dq_args_usage(out);
        return;
    }
    dq_help_env(out);
}
