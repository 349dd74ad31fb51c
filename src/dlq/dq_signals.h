/* dq_signals: SIGINT and SIGTERM as a stop request the loops poll, with no
 * handler and no global state: main blocks both before any thread starts
 * (librdkafka's threads inherit the mask), and the loops collect them. */
#ifndef DQ_SIGNALS_H
#define DQ_SIGNALS_H

#include <signal.h>

typedef struct {
    sigset_t set; /* SIGINT, SIGTERM */
    int count;    /* signals collected so far */
} dq_signals;

/* Blocks SIGINT and SIGTERM in the calling thread (call first in main) and
 * ignores SIGPIPE (a closed pipe shows up as a write error instead). */
void dq_signals_block(dq_signals *s);

/* Collects pending signals without waiting; returns the count so far
 * (0: go on; 1: stop gracefully; 2 or more: stop waiting for anything). */
int dq_signals_poll(dq_signals *s);

#endif
