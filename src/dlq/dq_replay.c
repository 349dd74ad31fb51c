/* dq_replay: `plantwatch-dlq replay` — selected dead letters published again
 * to their source topic and partition, with progress lines and the final
 * count replayed / failed / skipped (see dq_cmd.h). */
#include <inttypes.h>
#include <string.h>

#include "dq_cmd.h"
#include "dq_format.h"
#include "dq_letter.h"
#include "dq_publish.h"
#include "dq_scan.h"
#include "pw_time.h"

#define DQ_REPLAY_PROGRESS_US 1000000
#define DQ_REPLAY_DRAIN_MS 75000 /* above the producer's delivery timeout */
#define DQ_REPLAY_SHOWN_REFUSALS 10

typedef struct {
    const dq_config *cfg; /* borrowed */
    const dq_args *args;  /* borrowed */
    FILE *out, *errout;   /* borrowed */
    dq_publisher *pub;    /* owned by dq_cmd_replay; NULL in a dry run */
    long read, selected, skipped, dry;
    int64_t next_progress_us;
    int out_of_memory;
} dq_replay_ctx;

static void dq_replay_progress(dq_replay_ctx *c, int force)
{
    int64_t now = pw_monotonic_us();
    if (c->pub == NULL || (!force && now < c->next_progress_us)) {
        return;
    }
    c->next_progress_us = now + DQ_REPLAY_PROGRESS_US;
    dq_publish_counts n = dq_publisher_counts(c->pub);
    fprintf(c->errout,
            "replay: %ld read, %ld selected, %ld queued, %ld delivered, %ld failed, %ld skipped\n",
            c->read, c->selected, n.queued, n.delivered, n.failed, c->skipped);
}

static void dq_replay_idle(void *vctx)
{
    dq_replay_ctx *c = vctx;
    if (c->pub != NULL) {
        dq_publisher_poll(c->pub);
    }
    dq_replay_progress(c, 0);
}

static void dq_replay_show(dq_replay_ctx *c, const dq_letter *l, int32_t partition)
{
    char part[16] = "by key";
    if (partition != RD_KAFKA_PARTITION_UA) {
        snprintf(part, sizeof part, "%" PRId32, partition);
    }
    fprintf(c->out, "would replay %" PRId32 ":%" PRId64 " to %s [%s] key=", l->partition, l->offset,
            l->source_topic, part);
    if (l->key == NULL) {
        fputc('-', c->out);
    } else {
        dq_format_quoted(c->out, l->key, l->key_len);
    }
    fprintf(c->out, " (%zu bytes, reason %s)\n", l->value_len, l->reason ? l->reason : "-");
    c->dry++;
}

/* Counts a refused dead letter; the first few are shown. */
static void dq_replay_refuse(dq_replay_ctx *c, const dq_letter *l, const char *why)
{
    c->skipped++;
    if (c->skipped <= DQ_REPLAY_SHOWN_REFUSALS) {
        fprintf(c->errout,
                "plantwatch-dlq: refusing to replay %" PRId32 ":%" PRId64
                ": %s (replay targets: %s, %s)\n",
                l->partition, l->offset, why, c->cfg->targets[0], c->cfg->targets[1]);
    }
    if (c->skipped == DQ_REPLAY_SHOWN_REFUSALS) {
        fprintf(c->errout, "plantwatch-dlq: further refusals are counted, not shown\n");
    }
}

/* One selected dead letter: refused, shown (dry run) or queued. */
static void dq_replay_one(dq_replay_ctx *c, const rd_kafka_message_t *m, const dq_letter *l)
{
    char why[512];
    if (dq_letter_replayable(l, c->cfg->targets, DQ_TARGETS, why, sizeof why) != 0) {
        dq_replay_refuse(c, l, why);
        return;
    }
    int32_t partition = l->source_partition >= 0 ? l->source_partition : RD_KAFKA_PARTITION_UA;
    if (c->pub == NULL) {
        dq_replay_show(c, l, partition);
        return;
    }
    dq_publisher_send(c->pub, m, l->source_topic, partition); /* counts and reports */
}

static int dq_replay_visit(const rd_kafka_message_t *m, void *vctx)
{
    dq_replay_ctx *c = vctx;
    c->read++;
    dq_letter l;
    if (dq_letter_from_message(&l, m) != 0) {
        c->out_of_memory = 1;
        return -1;
    }
    int rc = 0;
    if (dq_letter_selected(&l, c->args->reason, c->args->topic)) {
        c->selected++;
        dq_replay_one(c, m, &l);
        rc = (c->args->limit > 0 && c->selected >= c->args->limit) ? 1 : 0;
    }
    dq_letter_clear(&l);
    return rc;
}

static void dq_replay_final(dq_replay_ctx *c, const dq_scan_result *res, long unanswered)
{
    const char *how = res->interrupted ? ", interrupted" : "";
    if (c->pub == NULL) {
        fprintf(c->out,
                "dry run: %ld would be replayed, %ld skipped (%ld selected of %ld read)%s\n",
                c->dry, c->skipped, c->selected, res->read, how);
        return;
    }
    dq_publish_counts n = dq_publisher_counts(c->pub);
    fprintf(c->out, "replayed %ld, failed %ld, skipped %ld (%ld selected of %ld read)%s\n",
            n.delivered, n.failed + unanswered, c->skipped, c->selected, res->read, how);
    if (unanswered > 0) {
        fprintf(c->errout,
                "plantwatch-dlq: %ld replays were not confirmed (counted as failed): they may "
                "still have been written; replaying them again is harmless\n",
                unanswered);
    }
}

static int dq_replay_status(const dq_replay_ctx *c, const dq_scan_result *res, long unanswered)
{
    long failed = c->pub ? dq_publisher_counts(c->pub).failed + unanswered : 0;
    if (res->interrupted) {
        return DQ_EXIT_INTERRUPTED;
    }
    return (failed > 0 || c->skipped > 0 || c->out_of_memory) ? DQ_EXIT_FAIL : DQ_EXIT_OK;
}

static int dq_replay_scan(dq_replay_ctx *c, dq_signals *sig)
{
    dq_scan_hooks hooks = {.visit = dq_replay_visit, .idle = dq_replay_idle, .ctx = c};
    dq_scan_result res;
    char err[1024];
    int rc = dq_scan_run(&c->cfg->reader, c->cfg->verbose, c->cfg->topic_dlq, sig, &hooks, &res,
                         err, sizeof err);
    if (rc != 0) {
        fprintf(c->errout, "plantwatch-dlq: replay: %s\n", err);
    }
    if (c->out_of_memory) {
        fprintf(c->errout, "plantwatch-dlq: replay: out of memory\n");
    }
    long unanswered = c->pub ? dq_publisher_drain(c->pub, DQ_REPLAY_DRAIN_MS) : 0;
    if (rc != 0 && res.read == 0) {
        return DQ_EXIT_FAIL; /* nothing was read, so nothing to count */
    }
    dq_replay_progress(c, 1);
    dq_replay_final(c, &res, unanswered);
    fflush(c->out);
    return rc != 0 ? DQ_EXIT_FAIL : dq_replay_status(c, &res, unanswered);
}

int dq_cmd_replay(const dq_config *cfg, const dq_args *args, dq_signals *sig, FILE *out,
                  FILE *errout)
{
    dq_replay_ctx c = {.cfg = cfg, .args = args, .out = out, .errout = errout};
    if (!args->dry_run) {
        char err[1024];
        c.pub = dq_publisher_new(&cfg->writer, cfg->verbose, errout, sig, err, sizeof err);
        if (c.pub == NULL) {
            fprintf(errout, "plantwatch-dlq: replay: %s\n", err);
            return DQ_EXIT_FAIL;
        }
    }
    c.next_progress_us = pw_monotonic_us() + DQ_REPLAY_PROGRESS_US;
    int status = dq_replay_scan(&c, sig);
    dq_publisher_free(c.pub);
    return status;
}
