/* mx_gate: a counting semaphore with a bounded wait (monotonic clock). */
#include "mx_gate.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

struct mx_gate {
    unsigned slots;
    unsigned running;
    pthread_mutex_t mu;
    pthread_cond_t freed;
};

mx_gate *mx_gate_new(unsigned slots)
{
    mx_gate *g = calloc(1, sizeof(*g));
    if (g == NULL) {
        return NULL;
    }
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    g->slots = slots ? slots : 1;
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->freed, &attr);
    pthread_condattr_destroy(&attr);
    return g;
}

void mx_gate_free(mx_gate *g)
{
    if (g == NULL) {
        return;
    }
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->freed);
    free(g);
}

/* The monotonic time wait_ms from now. */
static struct timespec mx_gate_until(long wait_ms)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    t.tv_sec += wait_ms / 1000;
    t.tv_nsec += (wait_ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

int mx_gate_enter(mx_gate *g, long wait_ms)
{
    struct timespec until = mx_gate_until(wait_ms > 0 ? wait_ms : 0);
    int rc = 0;
    pthread_mutex_lock(&g->mu);
    while (g->running >= g->slots) {
        if (wait_ms <= 0 || pthread_cond_timedwait(&g->freed, &g->mu, &until) == ETIMEDOUT) {
            rc = g->running >= g->slots ? -1 : 0;
            break;
        }
    }
    if (rc == 0) {
        g->running++;
    }
    pthread_mutex_unlock(&g->mu);
    return rc;
}

void mx_gate_leave(mx_gate *g)
{
    pthread_mutex_lock(&g->mu);
    if (g->running > 0) {
        g->running--;
    }
    pthread_cond_signal(&g->freed);
    pthread_mutex_unlock(&g->mu);
}

unsigned mx_gate_running(mx_gate *g)
{
    pthread_mutex_lock(&g->mu);
    unsigned n = g->running;
    pthread_mutex_unlock(&g->mu);
    return n;
}

unsigned mx_gate_slots(const mx_gate *g)
{
    return g->slots;
}
