/* sweeper: the retention sweep thread (see sweeper.h). */
#include "sweeper.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "pw_log.h"
#include "pw_time.h"

struct pwc_sweeper {
    const pwc_config *cfg;
    pwc_store *store;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int stop; /* under lock */
};

static void sweep_once(pwc_sweeper *sw)
{
    char err[256] = "";
    int64_t n = pwc_store_sweep(sw->store, pw_now_ms(), sw->cfg->telemetry_ttl_s,
                                sw->cfg->alerts_ttl_s, err, sizeof(err));
    if (n < 0) {
        pw_log(PW_LOG_WARN, "retention_sweep_failed", "%s (next try in %ld s)", err,
               sw->cfg->sweep_interval_s);
    } else {
        pw_log(PW_LOG_INFO, "retention_sweep", "deleted %" PRId64 " expired documents", n);
    }
}

/* Waits up to the interval; 1 when asked to stop. */
static int wait_interval(pwc_sweeper *sw)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += sw->cfg->sweep_interval_s;
    pthread_mutex_lock(&sw->lock);
    while (!sw->stop && pthread_cond_timedwait(&sw->wake, &sw->lock, &until) == 0) {
    }
    int stop = sw->stop;
    pthread_mutex_unlock(&sw->lock);
    return stop;
}

static void *sweeper_main(void *arg)
{
    pwc_sweeper *sw = arg;
    do {
        sweep_once(sw);
    } while (!wait_interval(sw));
    return NULL;
}

pwc_sweeper *pwc_sweeper_start(const pwc_config *cfg, pwc_store *store)
{
    if (!pwc_store_is_ferretdb(store) || cfg->sweep_interval_s <= 0) {
        return NULL;
    }
    pwc_sweeper *sw = calloc(1, sizeof(*sw));
    if (!sw) {
        pw_log(PW_LOG_ERROR, "retention_sweep_failed", "out of memory: no retention sweep");
        return NULL;
    }
    sw->cfg = cfg;
    sw->store = store;
    pthread_mutex_init(&sw->lock, NULL);
    pthread_cond_init(&sw->wake, NULL);
    if (pthread_create(&sw->thread, NULL, sweeper_main, sw) != 0) {
        pw_log(PW_LOG_ERROR, "retention_sweep_failed", "cannot start the sweep thread");
        pthread_cond_destroy(&sw->wake);
        pthread_mutex_destroy(&sw->lock);
        free(sw);
        return NULL;
    }
    return sw;
}

void pwc_sweeper_stop(pwc_sweeper *sw)
{
    if (!sw) {
        return;
    }
    pthread_mutex_lock(&sw->lock);
    sw->stop = 1;
    pthread_cond_signal(&sw->wake);
    pthread_mutex_unlock(&sw->lock);
    pthread_join(sw->thread, NULL);
    pthread_cond_destroy(&sw->wake);
    pthread_mutex_destroy(&sw->lock);
    free(sw);
}
