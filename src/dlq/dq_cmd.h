/* dq_cmd: the two subcommands of plantwatch-dlq. Each reads the DLQ topic
 * once (dq_scan), writes its result to out and its diagnostics to errout, and
 * returns the process exit status (DQ_EXIT_*). cfg, args and sig are borrowed
 * for the call. */
#ifndef DQ_CMD_H
#define DQ_CMD_H

#include <stdio.h>

#include "dq_args.h"
#include "dq_config.h"
#include "dq_signals.h"

/* One line (or NDJSON object) per selected dead letter, then a count by reason
 * (on errout with --json, so out stays NDJSON). */
int dq_cmd_list(const dq_config *cfg, const dq_args *args, dq_signals *sig, FILE *out,
                FILE *errout);

/* Publishes each selected dead letter to its source topic (or, with --dry-run,
 * shows what would be published); progress on errout, the final count on out. */
int dq_cmd_replay(const dq_config *cfg, const dq_args *args, dq_signals *sig, FILE *out,
                  FILE *errout);

#endif
