/* Unit tests for the pipeline view's pure parts: the per-partition verdict
 * (lag, difference, in sync / catching up / stalled / unknown) and the
 * one-sentence summary. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mx_pipeline.h"

#define NOW 1800000000000LL
#define STALL 30000

static Iot__V1__PartitionPipeline *part(const char *topic, int32_t p, int64_t accepted,
                                        int64_t counted, int64_t committed, int64_t last_ms)
{
    Iot__V1__PartitionPipeline *pp = malloc(sizeof(*pp));
    iot__v1__partition_pipeline__init(pp);
    pp->topic = strdup(topic);
    pp->partition = p;
    pp->accepted = accepted;
    pp->counted = counted;
    pp->committed = committed;
    pp->last_stored_ms = last_ms;
    return pp;
}

static void judge_and_free(Iot__V1__PartitionPipeline *pp, int known, const char *verdict,
                           int64_t lag, int64_t diff, int64_t since)
{
    assert_int_equal(mx_pipeline_judge(pp, known, NOW, STALL), 0);
    assert_string_equal(pp->verdict, verdict);
    assert_int_equal(pp->lag, lag);
    assert_int_equal(pp->difference, diff);
    assert_int_equal(pp->stalled_since_ms, since);
    protobuf_c_message_free_unpacked(&pp->base, NULL);
}

static void in_sync_when_nothing_in_flight(void **state)
{
    (void)state;
    judge_and_free(part("t", 0, 120, 120, 120, NOW - 3600000), 1, "in sync", 0, 0, 0);
    judge_and_free(part("t", 0, 0, 0, 0, 0), 1, "in sync", 0, 0, 0); /* empty partition */
}

static void catching_up_while_counted_advances(void **state)
{
    (void)state;
    /* lag 20: 15 counted but not committed yet, 5 not counted */
    judge_and_free(part("t", 1, 120, 115, 100, NOW - STALL + 1), 1, "catching up", 20, -15, 0);
    /* counted ahead of the commit only (the commit is in flight) */
    judge_and_free(part("t", 1, 120, 120, 110, NOW - 1000), 1, "catching up", 10, -10, 0);
}

static void stalled_after_the_threshold(void **state)
{
    (void)state;
    int64_t last = NOW - STALL;
    judge_and_free(part("t", 2, 130, 100, 100, last), 1, "stalled", 30, 0, last);
    /* nothing ever counted */
    judge_and_free(part("t", 2, 7, 0, 0, 0), 1, "stalled", 7, 0, 0);
}

static void unknown_without_kafka(void **state)
{
    (void)state;
    judge_and_free(part("t", 0, 99, 42, 99, NOW), 0, "unknown", 0, 0, 0);
}

static Iot__V1__PipelineResponse *response(size_t n)
{
    Iot__V1__PipelineResponse *r = malloc(sizeof(*r));
    iot__v1__pipeline_response__init(r);
    r->partitions = calloc(n + 1, sizeof(*r->partitions));
    return r;
}

static void summary_sentences(void **state)
{
    (void)state;
    Iot__V1__PipelineResponse *r = response(3);
    r->partitions[r->n_partitions++] = part("sensor-alerts", 0, 5, 5, 5, NOW);
    r->partitions[r->n_partitions++] = part("sensor-telemetry", 0, 10, 10, 10, NOW);
    for (size_t i = 0; i < r->n_partitions; i++) {
        assert_int_equal(mx_pipeline_judge(r->partitions[i], 1, NOW, STALL), 0);
    }
    assert_int_equal(mx_pipeline_summarize(r, NULL, 30), 0);
    assert_true(r->in_sync);
    assert_string_equal(r->verdict, "in sync");
    free(r->verdict);

    r->partitions[r->n_partitions++] = part("sensor-telemetry", 1, 12, 4, 4, NOW - 60000);
    assert_int_equal(mx_pipeline_judge(r->partitions[2], 1, NOW, STALL), 0);
    r->partitions[0]->accepted = 9; /* lag 4, counted just now */
    free(r->partitions[0]->verdict);
    assert_int_equal(mx_pipeline_judge(r->partitions[0], 1, NOW, STALL), 0);
    assert_int_equal(mx_pipeline_summarize(r, NULL, 30), 0);
    assert_false(r->in_sync);
    assert_string_equal(r->verdict, "stalled: 1 of 3 partitions (sensor-telemetry:1) have lag 8 "
                                    "and nothing was counted for 30 s; 1 catching up "
                                    "(sensor-alerts:0) with lag 4");
    free(r->verdict);

    assert_int_equal(mx_pipeline_summarize(r, "metadata: timed out", 30), 0);
    assert_false(r->in_sync);
    assert_string_equal(r->verdict, "Kafka is unreachable (metadata: timed out): accepted and "
                                    "committed offsets are unknown; the consumers counted 19 "
                                    "records of 3 partitions");
    protobuf_c_message_free_unpacked(&r->base, NULL);
}

static void no_partitions_is_not_in_sync(void **state)
{
    (void)state;
    Iot__V1__PipelineResponse *r = response(0);
    assert_int_equal(mx_pipeline_summarize(r, NULL, 30), 0);
    assert_false(r->in_sync);
    assert_string_equal(r->verdict, "no ingest partitions found");
    protobuf_c_message_free_unpacked(&r->base, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(in_sync_when_nothing_in_flight),
        cmocka_unit_test(catching_up_while_counted_advances),
        cmocka_unit_test(stalled_after_the_threshold),
        cmocka_unit_test(unknown_without_kafka),
        cmocka_unit_test(summary_sentences),
        cmocka_unit_test(no_partitions_is_not_in_sync),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
