/* dq_list: `plantwatch-dlq list` — the selected dead letters as text lines or
 * NDJSON, and the count by reason (see dq_cmd.h). */
#include <errno.h>
#include <string.h>

#include "dq_cmd.h"
#include "dq_format.h"
#include "dq_letter.h"
#include "dq_scan.h"
#include "dq_tally.h"

typedef struct {
    const dq_args *args; /* borrowed */
    FILE *out;           /* borrowed */
    dq_tally tally;
    long shown;
    int write_failed;
    int write_errno; /* errno of the failed write */
    int out_of_memory;
} dq_list_ctx;

static int dq_list_show(dq_list_ctx *c, const dq_letter *l)
{
    int rc = 0;
    if (c->args->json) {
        rc = dq_format_json_line(c->out, l);
    } else {
        dq_format_text(c->out, l);
    }
    if (rc != 0 || ferror(c->out)) {
        c->write_failed = 1;
        c->write_errno = errno;
        return -1;
    }
    if (dq_tally_add(&c->tally, l->reason) != 0) {
        c->out_of_memory = 1;
        return -1;
    }
    c->shown++;
    return (c->args->limit > 0 && c->shown >= c->args->limit) ? 1 : 0;
}

static int dq_list_visit(const rd_kafka_message_t *m, void *vctx)
{
    dq_list_ctx *c = vctx;
    dq_letter l;
    if (dq_letter_from_message(&l, m) != 0) {
        c->out_of_memory = 1;
        return -1;
    }
    int rc = 0;
    if (dq_letter_selected(&l, c->args->reason, c->args->topic)) {
        rc = dq_list_show(c, &l);
    }
    dq_letter_clear(&l);
    return rc;
}

static void dq_list_summary(dq_list_ctx *c, const dq_config *cfg, const dq_scan_result *res,
                            FILE *to)
{
    const char *end =
        res->interrupted ? "; interrupted" : (res->stopped ? "; --limit reached" : "");
    fprintf(to, "%ld dead letter%s (%ld of %ld read from %s up to its end offsets at start%s)\n",
            c->shown, c->shown == 1 ? "" : "s", res->read, res->snapshot, cfg->topic_dlq, end);
    if (c->shown > 0) {
        dq_tally_print(&c->tally, to);
    }
}

/* The exit status once the scan is over. */
static int dq_list_status(const dq_list_ctx *c, const dq_scan_result *res, FILE *errout)
{
    if (c->write_failed) {
        if (c->write_errno != EPIPE) {
            fprintf(errout, "plantwatch-dlq: list: cannot write the output: %s\n",
                    strerror(c->write_errno));
        }
        return DQ_EXIT_FAIL;
    }
    if (c->out_of_memory) {
        fprintf(errout, "plantwatch-dlq: list: out of memory\n");
        return DQ_EXIT_FAIL;
    }
    return res->interrupted ? DQ_EXIT_INTERRUPTED : DQ_EXIT_OK;
}

int dq_cmd_list(const dq_config *cfg, const dq_args *args, dq_signals *sig, FILE *out, FILE *errout)
{
    dq_list_ctx c = {.args = args, .out = out};
    dq_tally_init(&c.tally);
    dq_scan_hooks hooks = {.visit = dq_list_visit, .idle = NULL, .ctx = &c};
    dq_scan_result res;
    char err[1024];
    int rc =
        dq_scan_run(&cfg->reader, cfg->verbose, cfg->topic_dlq, sig, &hooks, &res, err, sizeof err);
    if (rc != 0) {
        fprintf(errout, "plantwatch-dlq: list: %s\n", err);
        dq_tally_free(&c.tally);
        return DQ_EXIT_FAIL;
    }
    int status = dq_list_status(&c, &res, errout);
    if (!c.write_failed) {
        dq_list_summary(&c, cfg, &res, args->json ? errout : out);
        fflush(out);
    }
    dq_tally_free(&c.tally);
    return status;
}
