/* dq_signals: blocked SIGINT/SIGTERM, collected with sigtimedwait (see
 * dq_signals.h). */
#include "dq_signals.h"

#include <pthread.h>
#include <string.h>
#include <time.h>

void dq_signals_block(dq_signals *s)
{
    memset(s, 0, sizeof *s);
    sigemptyset(&s->set);
    sigaddset(&s->set, SIGINT);
    sigaddset(&s->set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &s->set, NULL);
    signal(SIGPIPE, SIG_IGN);
}

int dq_signals_poll(dq_signals *s)
{
    const struct timespec now = {0, 0};
    while (sigtimedwait(&s->set, NULL, &now) > 0) {
        s->count++;
    }
    return s->count;
}
