/* plantwatch-dlq: entry point. Owns the process: signal blocking before any
 * thread starts, the subcommand dispatch (list, replay), configuration errors
 * and the exit status (0 done, 1 failed, 2 usage, 130 interrupted). */
#include <stdio.h>
#include <string.h>

#include "dq_args.h"
#include "dq_cmd.h"
#include "dq_config.h"
#include "dq_signals.h"

static int dq_main_usage_error(const dq_args *a, const char *err)
{
    if (a->cmd == DQ_CMD_NONE) {
        fprintf(stderr, "plantwatch-dlq: %s\n\n", err);
        dq_args_usage(stderr);
    } else {
        fprintf(stderr, "plantwatch-dlq %s: %s (see plantwatch-dlq %s --help)\n",
                a->cmd == DQ_CMD_LIST ? "list" : "replay", err,
                a->cmd == DQ_CMD_LIST ? "list" : "replay");
    }
    return DQ_EXIT_USAGE;
}

static int dq_main_run(const dq_args *a, dq_signals *sig)
{
    dq_config cfg;
    char err[1024];
    if (dq_config_from_env(&cfg, a->cmd == DQ_CMD_REPLAY && !a->dry_run, err, sizeof err) != 0) {
        fprintf(stderr, "plantwatch-dlq: configuration: %s\n", err);
        return DQ_EXIT_USAGE;
    }
    int rc = a->cmd == DQ_CMD_LIST ? dq_cmd_list(&cfg, a, sig, stdout, stderr)
                                   : dq_cmd_replay(&cfg, a, sig, stdout, stderr);
    dq_config_free(&cfg);
    return rc;
}

int main(int argc, char **argv)
{
    dq_signals sig;
    dq_signals_block(&sig);
    if (argc == 2 && strcmp(argv[1], "--version") == 0) {
        printf("plantwatch-dlq %s\n", PW_VERSION);
        return DQ_EXIT_OK;
    }
    dq_args a;
    char err[512];
    int parsed = dq_args_parse(argc, argv, &a, err, sizeof err);
    if (parsed == DQ_PARSE_HELP) {
        dq_args_help(a.cmd, stdout);
        return DQ_EXIT_OK;
    }
    if (parsed != DQ_PARSE_OK) {
        return dq_main_usage_error(&a, err);
    }
    int rc = dq_main_run(&a, &sig);
    if (rc == DQ_EXIT_INTERRUPTED) {
        fprintf(stderr, "plantwatch-dlq: stopped by a signal\n");
    }
    return rc;
}
