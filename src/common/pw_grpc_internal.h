/* pw_grpc_internal: the server and call structures shared by pw_grpc.c (the
 * server, its threads and limits), pw_grpc_health.c and pw_grpc_reflection.c
 * (the built-in services). Not for the services themselves. */
#ifndef PW_GRPC_INTERNAL_H
#define PW_GRPC_INTERNAL_H

#include "pw_grpc.h"

#include <pthread.h>
#include <stdatomic.h>

#define PW_GRPC_MAX_METHODS 32

typedef struct pw_grpc_refl pw_grpc_refl;

typedef struct {
    char *path;   /* owned */
    void *handle; /* from grpc_server_register_method; NULL for the catch-all */
    pw_grpc_handler fn;
    void *ctx; /* borrowed */
} pw_grpc_method;

enum { PW_GRPC_CLOSE_NONE, PW_GRPC_CLOSE_PENDING, PW_GRPC_CLOSE_DONE };

struct pw_grpc_call {
    pw_grpc_server *srv;
    pw_grpc_method *method;
    grpc_call *call;           /* NULL until accepted and after finish */
    grpc_completion_queue *cq; /* pluck queue bound to this call */
    gpr_timespec deadline;     /* the client's */
    int64_t started_ms;        /* CLOCK_MONOTONIC when accepted */
    grpc_metadata_array md;
    grpc_call_details details; /* unregistered calls only */
    int finished;              /* the status went out (or the call was aborted) */
    int sent_initial;          /* initial metadata went out */
    int has_worker;            /* holds one of the server's worker slots */
    int close_state;           /* PW_GRPC_CLOSE_*: an early RECV_CLOSE_ON_SERVER */
    int close_cancelled;
    char close_tag;
    struct pw_grpc_call *next; /* thread queue link */
};

struct pw_grpc_server {
    grpc_server *server;
    grpc_completion_queue *cq; /* notifications: new calls, shutdown */
    char *addr;
    pw_grpc_limits lim;
    pw_grpc_method methods[PW_GRPC_MAX_METHODS];
    size_t nmethods;
    pw_grpc_method unknown;              /* answers calls to unregistered paths */
    char *services[PW_GRPC_MAX_METHODS]; /* full service names, owned */
    size_t nservices;
    pw_grpc_refl *refl; /* owned; NULL until start */
    unsigned pending;   /* outstanding call requests per method */

    int started, stopped;
    atomic_int stopping;
    pthread_t acceptor;
    pthread_t *threads; /* max_calls entries */
    unsigned nthreads, idle_threads, queued;
    unsigned workers, workers_busy;

    pthread_mutex_t mu;
    pthread_cond_t cond;        /* queue non-empty or threads_stop */
    pthread_cond_t worker_cond; /* a worker slot came free (CLOCK_MONOTONIC) */
    pthread_cond_t shut_cond;   /* shutdown_done */
    pthread_cond_t health_cond; /* health_version changed (CLOCK_MONOTONIC) */
    pw_grpc_call *head, *tail;
    long active;
    int threads_stop;
    int shutdown_done;
    char shutdown_tag;
    int serving;
    unsigned health_version;

    atomic_int watches; /* Health.Watch calls open */
    atomic_long st_total, st_busy, st_no_worker, st_idle, st_lifetime;
};

int64_t pw_grpc_now_ms(void);
/* A CLOCK_MONOTONIC timespec ms from now, for pthread_cond_timedwait. */
struct timespec pw_grpc_abs_after(int64_t ms);
/* Milliseconds left of the call's server-side lifetime (may be <= 0). */
int64_t pw_grpc_lifetime_left_ms(const pw_grpc_call *c);
/* Gives the call's worker slot back while it waits for something else. */
void pw_grpc_worker_release(pw_grpc_call *c);

/* The built-in services (handlers for pw_grpc_server_add_method; ctx is the
 * server). */
void pw_grpc_health_check(pw_grpc_call *call, void *ctx);
void pw_grpc_health_watch(pw_grpc_call *call, void *ctx);
void pw_grpc_reflection_info(pw_grpc_call *call, void *ctx);

/* Index of the embedded descriptor set; NULL if it does not decode. */
pw_grpc_refl *pw_grpc_refl_new(void);
void pw_grpc_refl_free(pw_grpc_refl *r);

/* The packed ServerReflectionResponse to one packed request, listing
 * services[0..nservices) (borrowed) for list_services. 0 with *out malloc'd
 * (caller frees), -1 if the request does not decode, -2 out of memory. */
int pw_grpc_refl_respond(const pw_grpc_refl *r, char *const *services, size_t nservices,
                         const uint8_t *req, size_t len, uint8_t **out, size_t *out_len);

#endif
