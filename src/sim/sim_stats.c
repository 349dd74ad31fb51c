/* sim_stats: progress and summary output of a run (see sim_stats.h). */
#include "sim_stats.h"

#include <inttypes.h>
#include <jansson.h>

double pw_sim_stats_rate(const pw_sim_stats *s)
{
    return s->elapsed_s > 0 ? (double)s->sent / s->elapsed_s : 0.0;
}

void pw_sim_stats_progress(const pw_sim_stats *s, FILE *out)
{
    fprintf(out,
            "[%6.1fs] sent %" PRIu64 "  accepted %" PRIu64 "  rejected %" PRIu64 "  failed %" PRIu64
            "  in flight %" PRIu64 "  rate %.1f msg/s\n",
            s->elapsed_s, s->sent, s->accepted, s->rejected, s->failed, s->in_flight,
            pw_sim_stats_rate(s));
    fflush(out);
}

void pw_sim_stats_summary(const pw_sim_stats *s, FILE *out)
{
    fprintf(out, "plantwatch-sim summary\n");
    fprintf(out, "  elapsed    %.1f s\n", s->elapsed_s);
    fprintf(out, "  sent       %" PRIu64 " (%" PRIu64 " readings, %" PRIu64 " alerts)\n", s->sent,
            s->readings, s->alerts);
    fprintf(out, "  accepted   %" PRIu64 "\n", s->accepted);
    fprintf(out, "  rejected   %" PRIu64 "\n", s->rejected);
    fprintf(out, "  failed     %" PRIu64 "\n", s->failed);
    fprintf(out, "  rate       %.1f msg/s\n", pw_sim_stats_rate(s));
    fprintf(out, "  requests   %" PRIu64 " (%" PRIu64 " retries, %" PRIu64 " throttled)\n",
            s->requests, s->retries, s->throttled);
    fprintf(out, "  seed       %" PRIu64 "\n", s->seed);
    if (s->last_error[0]) {
        fprintf(out, "  last error %s\n", s->last_error);
    }
    fflush(out);
}

void pw_sim_stats_summary_json(const pw_sim_stats *s, FILE *out)
{
    json_t *o = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:s}", "sent",
                          (json_int_t)s->sent, "accepted", (json_int_t)s->accepted, "rejected",
                          (json_int_t)s->rejected, "failed", (json_int_t)s->failed, "readings",
                          (json_int_t)s->readings, "alerts", (json_int_t)s->alerts, "requests",
                          (json_int_t)s->requests, "retries", (json_int_t)s->retries, "throttled",
                          (json_int_t)s->throttled, "elapsed_s", s->elapsed_s, "rate",
                          pw_sim_stats_rate(s), "last_error", s->last_error);
    /* the seed is a full 64-bit value: a string keeps it exact for any JSON reader */
    char seed[24];
    snprintf(seed, sizeof seed, "%" PRIu64, s->seed);
    json_object_set_new(o, "seed", json_string(seed));
    json_dumpf(o, out, JSON_COMPACT | JSON_REAL_PRECISION(6));
    fputc('\n', out);
    fflush(out);
    json_decref(o);
}

int pw_sim_stats_exit_code(const pw_sim_stats *s)
{
    return (s->rejected || s->failed) ? 1 : 0;
}
