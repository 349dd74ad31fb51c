/* sim_send: run loop, libcurl multi requests, answer classification and
 * retries (see sim_send.h). */
#include "sim_send.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "pw_time.h"
#include "pw_uuid.h"
#include "sim_gen.h"
#include "sim_pace.h"

#define PW_SIM_RESP_MAX 4096
#define PW_SIM_POLL_MAX_MS 100

typedef struct pw_sim_req {
    CURL *easy;
    struct curl_slist *headers;
    char *body;
    size_t body_len;
    unsigned nmsgs;
    pw_sim_kind kind;
    size_t key;
    unsigned attempt;      /* retries made so far */
    long last_status;      /* last HTTP status (0: network error) */
    int64_t not_before_us; /* retry time */
    char idem[64];
    char resp[PW_SIM_RESP_MAX];
    size_t resp_len;
    char errbuf[CURL_ERROR_SIZE];
    struct pw_sim_req *next;
} pw_sim_req;

typedef struct {
    const pw_sim_run_opts *o;
    const pw_sim_keys *keys;
    volatile sig_atomic_t *stop;
    FILE *log;
    pw_sim_stats *st;
    CURLM *multi;
    pw_sim_fleet fleet;
    pw_sim_keysched ks;
    pw_sim_pacer pacer;
    pw_sim_rng jitter;   /* backoff jitter, apart from the fleet so messages stay reproducible */
    pw_sim_req *active;  /* requests in flight */
    pw_sim_req *waiting; /* requests waiting to be retried */
    size_t n_active;
    uint64_t reqno;
    char run_id[PW_UUID_LEN];
    char url_telemetry[PW_SIM_URL_MAX + 32];
    char url_alerts[PW_SIM_URL_MAX + 32];
    int64_t start_us;
    int64_t next_progress_us;
} pw_sim_ctx;

/* ---- answers ---- */

long pw_sim_accepted_count(const char *body, long fallback)
{
    json_t *doc = body ? json_loads(body, 0, NULL) : NULL;
    json_t *n = json_is_object(doc) ? json_object_get(doc, "accepted") : NULL;
    long v = json_is_integer(n) ? (long)json_integer_value(n) : fallback;
    json_decref(doc);
    return v;
}

static void pw_sim_one_line(const char *in, char *out, size_t n)
{
    size_t j = 0;
    for (size_t i = 0; in[i] && j + 1 < n; i++) {
        out[j++] = (in[i] == '\n' || in[i] == '\r' || in[i] == '\t') ? ' ' : in[i];
    }
    out[j] = '\0';
}

void pw_sim_describe_error(long status, const char *path, const char *body, char *out, size_t n)
{
    char text[200] = "";
    json_t *doc = body ? json_loads(body, 0, NULL) : NULL;
    json_t *error = json_object_get(doc, "error");
    const char *msg = json_string_value(json_object_get(error, "message"));
    if (!msg) {
        msg = json_string_value(json_object_get(doc, "message"));
    }
    if (msg) {
        json_t *d0 = json_array_get(json_object_get(error, "details"), 0);
        const char *field = json_string_value(json_object_get(d0, "field"));
        const char *dmsg = json_string_value(json_object_get(d0, "message"));
        if (field && dmsg) {
            snprintf(text, sizeof text, "%s (%s: %s)", msg, field, dmsg);
        } else {
            snprintf(text, sizeof text, "%s", msg);
        }
    } else if (body) {
        pw_sim_one_line(body, text, sizeof text);
    }
    json_decref(doc);
    snprintf(out, n, "HTTP %ld %s%s%s", status, path, text[0] ? ": " : "", text);
}

/* ---- requests ---- */

static size_t pw_sim_on_body(char *data, size_t size, size_t nmemb, void *userp)
{
    pw_sim_req *r = userp;
    size_t len = size * nmemb;
    size_t room = PW_SIM_RESP_MAX - 1 - r->resp_len;
    size_t take = len < room ? len : room;
    memcpy(r->resp + r->resp_len, data, take);
    r->resp_len += take;
    r->resp[r->resp_len] = '\0';
    return len;
}

static void pw_sim_req_free(pw_sim_req *r)
{
    if (!r) {
        return;
    }
    if (r->easy) {
        curl_easy_cleanup(r->easy);
    }
    curl_slist_free_all(r->headers);
    free(r->body);
    free(r);
}

static const char *pw_sim_path(pw_sim_kind kind)
{
    return kind == PW_SIM_KIND_ALERTS ? "/v1/alerts" : "/v1/telemetry";
}

static int pw_sim_req_start(pw_sim_ctx *c, pw_sim_req *r)
{
    char h[320];
    if (r->easy) {
        curl_easy_cleanup(r->easy);
    }
    curl_slist_free_all(r->headers);
    r->headers = NULL;
    r->resp_len = 0;
    r->resp[0] = '\0';
    r->errbuf[0] = '\0';
    r->easy = curl_easy_init();
    if (!r->easy) {
        return -1;
    }
    snprintf(h, sizeof h, "apikey: %s", c->keys->items[r->key].key);
    r->headers = curl_slist_append(r->headers, h);
    r->headers = curl_slist_append(r->headers, "Content-Type: application/json");
    snprintf(h, sizeof h, "Idempotency-Key: %s", r->idem);
    r->headers = curl_slist_append(r->headers, h);
    r->headers = curl_slist_append(r->headers, "Expect:");
    CURL *e = r->easy;
    curl_easy_setopt(e, CURLOPT_URL,
                     r->kind == PW_SIM_KIND_ALERTS ? c->url_alerts : c->url_telemetry);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, pw_sim_on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_PRIVATE, r);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(c->o->timeout * 1000));
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(c->o->timeout * 1000));
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "plantwatch-sim/" PW_VERSION);
    if (curl_multi_add_handle(c->multi, e) != CURLM_OK) {
        return -1;
    }
    r->next = c->active;
    c->active = r;
    c->n_active++;
    c->st->requests++;
    return 0;
}

static pw_sim_req *pw_sim_req_new(pw_sim_ctx *c, size_t key, int64_t now_ms)
{
    pw_sim_req *r = calloc(1, sizeof *r);
    if (!r) {
        return NULL;
    }
    r->kind = pw_sim_next_kind(&c->fleet, c->o->alert_share);
    json_t *body = pw_sim_next_body(&c->fleet, r->kind, c->o->batch, now_ms);
    r->body = json_dumps(body, PW_SIM_JSON_FLAGS);
    json_decref(body);
    if (!r->body) {
        free(r);
        return NULL;
    }
    r->body_len = strlen(r->body);
    r->nmsgs = c->o->batch;
    r->key = key;
    snprintf(r->idem, sizeof r->idem, "sim-%s-%" PRIu64, c->run_id, ++c->reqno);
    return r;
}

/* The request is over: its messages count as accepted, rejected or failed. */
static void pw_sim_finish(pw_sim_ctx *c, pw_sim_req *r, uint64_t accepted, uint64_t rejected,
                          uint64_t failed)
{
    pw_sim_stats *st = c->st;
    st->accepted += accepted;
    st->rejected += rejected;
    st->failed += failed;
    st->sent += r->nmsgs;
    st->in_flight -= r->nmsgs;
    if (r->kind == PW_SIM_KIND_ALERTS) {
        st->alerts += r->nmsgs;
    } else {
        st->readings += r->nmsgs;
    }
    pw_sim_req_free(r);
}

static void pw_sim_unlink_active(pw_sim_ctx *c, pw_sim_req *r)
{
    for (pw_sim_req **p = &c->active; *p; p = &(*p)->next) {
        if (*p == r) {
            *p = r->next;
            c->n_active--;
            break;
        }
    }
    r->next = NULL;
    curl_multi_remove_handle(c->multi, r->easy);
}

static int pw_sim_retryable(long status)
{
    return status == 429 || status == 503;
}

static void pw_sim_schedule_retry(pw_sim_ctx *c, pw_sim_req *r, long retry_after_s, int64_t now)
{
    r->attempt++;
    r->not_before_us =
        now + pw_sim_backoff_us(r->attempt, retry_after_s, pw_sim_rng_uniform(&c->jitter));
    pw_sim_keysched_hold(&c->ks, r->key, r->not_before_us);
    r->next = c->waiting;
    c->waiting = r;
    c->st->retries++;
}

static void pw_sim_on_done(pw_sim_ctx *c, pw_sim_req *r, CURLcode res, int64_t now)
{
    long status = 0;
    curl_off_t retry_after = 0;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(r->easy, CURLINFO_RETRY_AFTER, &retry_after);
    pw_sim_unlink_active(c, r);
    if (res != CURLE_OK) {
        snprintf(c->st->last_error, sizeof c->st->last_error, "POST %s: %s", pw_sim_path(r->kind),
                 r->errbuf[0] ? r->errbuf : curl_easy_strerror(res));
        pw_sim_finish(c, r, 0, 0, r->nmsgs);
        return;
    }
    r->last_status = status;
    if (status >= 200 && status < 300) {
        long n = pw_sim_accepted_count(r->resp, (long)r->nmsgs);
        uint64_t ok = n < 0 ? 0 : ((uint64_t)n > r->nmsgs ? r->nmsgs : (uint64_t)n);
        pw_sim_finish(c, r, ok, r->nmsgs - ok, 0);
        return;
    }
    if (status == 429) {
        c->st->throttled++;
    }
    if (pw_sim_retryable(status) && r->attempt < c->o->retries && !*c->stop) {
        pw_sim_schedule_retry(c, r, (long)retry_after, now);
        return;
    }
    pw_sim_describe_error(status, pw_sim_path(r->kind), r->resp, c->st->last_error,
                          sizeof c->st->last_error);
    if (status >= 400 && status < 500) {
        pw_sim_finish(c, r, 0, r->nmsgs, 0);
    } else {
        /* a 503 names how many items of the request were accepted anyway */
        long n = status == 503 ? pw_sim_accepted_count(r->resp, 0) : 0;
        uint64_t ok = n < 0 ? 0 : ((uint64_t)n > r->nmsgs ? r->nmsgs : (uint64_t)n);
        pw_sim_finish(c, r, ok, 0, r->nmsgs - ok);
    }
}

/* ---- loop ---- */

static void pw_sim_collect(pw_sim_ctx *c, int64_t now)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(c->multi, &left))) {
        if (m->msg != CURLMSG_DONE) {
            continue;
        }
        pw_sim_req *r = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        pw_sim_on_done(c, r, m->data.result, now);
    }
}

static void pw_sim_launch_retries(pw_sim_ctx *c, int64_t now)
{
    for (pw_sim_req **p = &c->waiting; *p && c->n_active < c->o->max_in_flight;) {
        pw_sim_req *r = *p;
        if (r->not_before_us > now || pw_sim_keysched_acquire_key(&c->ks, r->key, now) != 0) {
            p = &r->next;
            continue;
        }
        *p = r->next;
        r->next = NULL;
        if (pw_sim_req_start(c, r) != 0) {
            snprintf(c->st->last_error, sizeof c->st->last_error, "could not start a request");
            pw_sim_finish(c, r, 0, 0, r->nmsgs);
        }
    }
}

static void pw_sim_launch_new(pw_sim_ctx *c, int64_t now)
{
    while (pw_sim_pacer_due(&c->pacer, now) && c->n_active < c->o->max_in_flight) {
        int key = pw_sim_keysched_acquire(&c->ks, now);
        if (key < 0) {
            return;
        }
        pw_sim_pacer_advance(&c->pacer, now);
        pw_sim_req *r = pw_sim_req_new(c, (size_t)key, pw_now_ms());
        if (!r) {
            return;
        }
        c->st->in_flight += r->nmsgs;
        if (pw_sim_req_start(c, r) != 0) {
            snprintf(c->st->last_error, sizeof c->st->last_error, "could not start a request");
            pw_sim_finish(c, r, 0, 0, r->nmsgs);
        }
    }
}

/* Stop on a signal: requests waiting for a retry are given up. */
static void pw_sim_drop_waiting(pw_sim_ctx *c)
{
    while (c->waiting) {
        pw_sim_req *r = c->waiting;
        c->waiting = r->next;
        snprintf(c->st->last_error, sizeof c->st->last_error,
                 "HTTP %ld %s: retry abandoned at stop", r->last_status, pw_sim_path(r->kind));
        if (r->last_status >= 400 && r->last_status < 500) {
            pw_sim_finish(c, r, 0, r->nmsgs, 0);
        } else {
            pw_sim_finish(c, r, 0, 0, r->nmsgs);
        }
    }
}

/* Second signal: requests in flight are abandoned and count as failed. */
static void pw_sim_abort_active(pw_sim_ctx *c)
{
    while (c->active) {
        pw_sim_req *r = c->active;
        pw_sim_unlink_active(c, r);
        snprintf(c->st->last_error, sizeof c->st->last_error, "POST %s: aborted",
                 pw_sim_path(r->kind));
        pw_sim_finish(c, r, 0, 0, r->nmsgs);
    }
}

static int64_t pw_sim_min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

/* How long to wait in curl_multi_poll: until the next thing to do, at most 100 ms. */
static int pw_sim_poll_ms(pw_sim_ctx *c, int stopping, int64_t now)
{
    int64_t wake = now + PW_SIM_POLL_MAX_MS * 1000LL;
    if (!stopping && c->n_active < c->o->max_in_flight) {
        wake = pw_sim_min64(wake, c->pacer.next_due_us > pw_sim_keysched_next_ready(&c->ks)
                                      ? c->pacer.next_due_us
                                      : pw_sim_keysched_next_ready(&c->ks));
    }
    for (pw_sim_req *r = c->waiting; r; r = r->next) {
        int64_t key_ready = c->ks.next_us[r->key];
        wake = pw_sim_min64(wake, r->not_before_us > key_ready ? r->not_before_us : key_ready);
    }
    if (c->o->progress > 0 && c->log) {
        wake = pw_sim_min64(wake, c->next_progress_us);
    }
    long curl_ms = -1;
    curl_multi_timeout(c->multi, &curl_ms);
    int64_t ms = (wake - now + 999) / 1000;
    if (curl_ms >= 0 && curl_ms < ms) {
        ms = curl_ms;
    }
    return ms < 0 ? 0 : (int)ms;
}

static void pw_sim_warn_plan(pw_sim_ctx *c)
{
    pw_sim_plan plan;
    const pw_sim_run_opts *o = c->o;
    pw_sim_plan_compute(o->rate, o->batch, c->keys->len, o->key_limit, &plan);
    if (!c->log) {
        return;
    }
    fprintf(c->log,
            "plantwatch-sim: %u devices in %u zones, %.1f msg/s in batches of %u = %.2f "
            "requests/s over %zu keys (each at most %.2f requests/s), keys from %s\n",
            o->devices, o->zones, o->rate, o->batch, plan.req_rate, c->keys->len, plan.key_req_rate,
            c->keys->source);
    if (plan.feasible) {
        return;
    }
    fprintf(c->log,
            "plantwatch-sim: warning: %.1f msg/s needs %u keys at batch %u but %zu are "
            "available; the run is capped at %.1f msg/s.",
            o->rate, plan.keys_needed, o->batch, c->keys->len, plan.max_msg_rate);
    if (plan.suggested_batch) {
        fprintf(c->log, " Use --batch %u (or more keys) to reach the rate.", plan.suggested_batch);
    }
    fputc('\n', c->log);
}

static int pw_sim_ctx_init(pw_sim_ctx *c, const pw_sim_run_opts *o, const pw_sim_keys *keys,
                           char *err, size_t errlen)
{
    uint64_t seed = c->st->seed;
    if (keys->len == 0) {
        snprintf(err, errlen, "no API keys");
        return -1;
    }
    if (pw_sim_fleet_init_prefix(&c->fleet, o->device_prefix, o->devices, o->zones, seed) != 0 ||
        pw_sim_keysched_init(&c->ks, keys->len, o->key_limit) != 0) {
        snprintf(err, errlen, "cannot build the fleet (devices %u, zones %u)", o->devices,
                 o->zones);
        return -1;
    }
    pw_sim_rng_seed(&c->jitter, seed ^ 0x5eed5eed5eed5eedULL);
    c->multi = curl_multi_init();
    if (!c->multi) {
        snprintf(err, errlen, "curl_multi_init failed");
        return -1;
    }
    curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, (long)o->max_in_flight);
    curl_multi_setopt(c->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)o->max_in_flight);
    snprintf(c->url_telemetry, sizeof c->url_telemetry, "%s/v1/telemetry", o->url);
    snprintf(c->url_alerts, sizeof c->url_alerts, "%s/v1/alerts", o->url);
    pw_uuid_random(c->run_id);
    return 0;
}

static void pw_sim_ctx_free(pw_sim_ctx *c)
{
    pw_sim_abort_active(c);
    pw_sim_drop_waiting(c);
    if (c->multi) {
        curl_multi_cleanup(c->multi);
    }
    pw_sim_keysched_free(&c->ks);
    pw_sim_fleet_free(&c->fleet);
}

static void pw_sim_tick(pw_sim_ctx *c, int stopping, int64_t now)
{
    if (!stopping) {
        pw_sim_launch_retries(c, now);
        pw_sim_launch_new(c, now);
    } else {
        pw_sim_launch_retries(c, now);
    }
    int running = 0;
    curl_multi_perform(c->multi, &running);
    pw_sim_collect(c, pw_monotonic_us());
    c->st->elapsed_s = (double)(pw_monotonic_us() - c->start_us) / 1e6;
    if (c->o->progress > 0 && c->log && now >= c->next_progress_us) {
        pw_sim_stats_progress(c->st, c->log);
        c->next_progress_us += (int64_t)(c->o->progress * 1e6);
    }
}

int pw_sim_run(const pw_sim_run_opts *o, const pw_sim_keys *keys, volatile sig_atomic_t *stop,
               FILE *log, pw_sim_stats *stats, char *err, size_t errlen)
{
    pw_sim_ctx c;
    memset(&c, 0, sizeof c);
    memset(stats, 0, sizeof *stats);
    stats->seed = o->seed;
    c.o = o;
    c.keys = keys;
    c.stop = stop;
    c.log = log;
    c.st = stats;
    if (pw_sim_ctx_init(&c, o, keys, err, errlen) != 0) {
        pw_sim_ctx_free(&c);
        return -1;
    }
    pw_sim_warn_plan(&c);
    c.start_us = pw_monotonic_us();
    c.next_progress_us = c.start_us + (int64_t)(o->progress * 1e6);
    pw_sim_pacer_init(&c.pacer, o->rate / o->batch, c.start_us);
    int stopping = 0;
    for (;;) {
        int64_t now = pw_monotonic_us();
        if (*stop >= 2) {
            pw_sim_abort_active(&c);
        }
        if (*stop) {
            pw_sim_drop_waiting(&c);
        }
        if (!stopping && (*stop || (o->duration > 0 && now - c.start_us >= o->duration * 1e6))) {
            stopping = 1;
        }
        pw_sim_tick(&c, stopping, now);
        if (stopping && c.n_active == 0 && !c.waiting) {
            break;
        }
        curl_multi_poll(c.multi, NULL, 0, pw_sim_poll_ms(&c, stopping, pw_monotonic_us()), NULL);
    }
    stats->elapsed_s = (double)(pw_monotonic_us() - c.start_us) / 1e6;
    pw_sim_ctx_free(&c);
    return 0;
}
