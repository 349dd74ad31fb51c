/* mx_service: instrumentation around the views. */
#include "mx_service.h"

#include <string.h>

#include "pw_log.h"
#include "pw_time.h"

static const double mx_latency_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                           0.1,   0.25,   0.5,   1.0,  2.5,   5.0};

int mx_service_init(mx_service *s, mx_store *store, pw_prom *prom, const char *www_dir)
{
    memset(s, 0, sizeof(*s));
    s->store = store;
    s->prom = prom;
    s->www_dir = www_dir;
    s->requests = pw_prom_counter(prom, "plantwatch_metrics_requests_total",
                                  "Analytics view requests by view, protocol and outcome.",
                                  "view,protocol,outcome");
    s->latency = pw_prom_histogram(prom, "plantwatch_metrics_view_duration_seconds",
                                   "Time to compute an analytics view, by view and protocol.",
                                   "view,protocol", mx_latency_bounds,
                                   sizeof(mx_latency_bounds) / sizeof(mx_latency_bounds[0]));
    if (s->requests == NULL || s->latency == NULL || mx_view_count > MX_MAX_VIEWS) {
        return -1;
    }
    for (size_t i = 0; i < mx_view_count; i++) {
        s->methods[i].svc = s;
        s->methods[i].view = &mx_views[i];
    }
    return 0;
}

void mx_service_count(mx_service *s, const mx_view *v, const char *protocol, const char *outcome)
{
    const char *labels[] = {v->name, protocol, outcome};
    pw_prom_add(s->requests, labels, 1);
}

int mx_service_run(mx_service *s, const mx_view *v, const char *protocol, const mx_params *p,
                   ProtobufCMessage **out, char *err, size_t errlen)
{
    int64_t t0 = pw_monotonic_us();
    int rc = v->run(s->store, p, out, err, errlen);
    double secs = (double)(pw_monotonic_us() - t0) / 1e6;
    const char *labels[] = {v->name, protocol};
    pw_prom_observe(s->latency, labels, secs);
    mx_service_count(s, v, protocol, rc == 0 ? MX_OUTCOME_OK : MX_OUTCOME_UNAVAILABLE);
    if (rc != 0) {
        pw_log(PW_LOG_ERROR, "view_failed", "%s (%s): %s", v->name, protocol, err);
    } else if (pw_log_enabled(PW_LOG_DEBUG)) {
        pw_log(PW_LOG_DEBUG, "view_served", "%s (%s) in %.3f ms", v->name, protocol, secs * 1e3);
    }
    return rc;
}
