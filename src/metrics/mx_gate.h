/* mx_gate: the bound on concurrent store computations of the metrics
 * service. At most `slots` computations hold the gate at once; a caller that
 * finds it full waits at most wait_ms for a slot and is then refused (the
 * request answers 503 / RESOURCE_EXHAUSTED instead of queueing without
 * bound). Thread-safe. */
#ifndef MX_GATE_H
#define MX_GATE_H

#include <stddef.h>

typedef struct mx_gate mx_gate;

/* A gate of slots (>= 1) computations; NULL on ENOMEM. */
mx_gate *mx_gate_new(unsigned slots);
void mx_gate_free(mx_gate *g);

/* Takes a slot, waiting at most wait_ms (0: only if one is free now).
 * 0 with the slot held (give it back with mx_gate_leave), -1 when none became
 * free in time. */
int mx_gate_enter(mx_gate *g, long wait_ms);
void mx_gate_leave(mx_gate *g);

/* Slots held now, and the gate's size. */
unsigned mx_gate_running(mx_gate *g);
unsigned mx_gate_slots(const mx_gate *g);

#endif
