/* pw_grpc: a gRPC C core server for the services. One acceptor thread
 * requests calls for every registered method; each accepted call gets a
 * thread of a pool that grows on demand up to PW_GRPC_MAX_CALLS, and runs the
 * method's handler synchronously on the call's own completion queue. Handler
 * code runs on at most `workers` threads at once: a call waiting for the
 * network (a message, a send, the end of the call) does not hold a worker, so
 * idle streams never starve other calls. Handlers receive raw message bytes
 * (protobuf-c decodes). Every server also answers grpc.health.v1.Health and
 * server reflection (grpc.reflection.v1 and v1alpha). */
#ifndef PW_GRPC_H
#define PW_GRPC_H

#include <grpc/grpc.h>
#include <grpc/status.h>
#include <stddef.h>
#include <stdint.h>

typedef struct pw_grpc_server pw_grpc_server;
typedef struct pw_grpc_call pw_grpc_call;

/* Runs on a call thread; must end the call with pw_grpc_call_finish. */
typedef void (*pw_grpc_handler)(pw_grpc_call *call, void *ctx);

/* Server limits; pw_grpc_limits_from_env reads them (defaults in brackets).
 * What a client sees when one is hit is in README.md ("gRPC: health,
 * reflection and limits"). */
typedef struct {
    long max_calls;              /* PW_GRPC_MAX_CALLS [128]: calls in progress, else
                                    RESOURCE_EXHAUSTED at once */
    long max_streams;            /* PW_GRPC_MAX_STREAMS_PER_CONNECTION [100]: HTTP/2
                                    streams per connection (the client queues more) */
    long idle_timeout_ms;        /* PW_GRPC_IDLE_TIMEOUT_MS [30000]: longest wait for
                                    the next message, else DEADLINE_EXCEEDED */
    long max_call_ms;            /* PW_GRPC_MAX_CALL_MS [600000]: server-side deadline
                                    of every call, else DEADLINE_EXCEEDED */
    long worker_wait_ms;         /* PW_GRPC_WORKER_WAIT_MS [5000]: longest wait for a
                                    free worker, else UNAVAILABLE */
    long keepalive_time_ms;      /* PW_GRPC_KEEPALIVE_TIME_MS [60000]: server pings */
    long keepalive_timeout_ms;   /* PW_GRPC_KEEPALIVE_TIMEOUT_MS [20000]: ping answer */
    long max_connection_idle_ms; /* PW_GRPC_MAX_CONNECTION_IDLE_MS [300000]: GOAWAY
                                    to a connection without calls */
} pw_grpc_limits;

/* Counters of one server, readable at any time. */
typedef struct {
    long calls_active;      /* accepted and not yet ended */
    long calls_total;       /* accepted, including the refused ones */
    long refused_busy;      /* RESOURCE_EXHAUSTED: PW_GRPC_MAX_CALLS reached */
    long refused_no_worker; /* UNAVAILABLE: no worker within PW_GRPC_WORKER_WAIT_MS */
    long idle_timeouts;     /* DEADLINE_EXCEEDED: no message within the idle timeout */
    long lifetime_exceeded; /* DEADLINE_EXCEEDED: PW_GRPC_MAX_CALL_MS reached */
    long threads;           /* call threads started */
} pw_grpc_stats;

void pw_grpc_limits_default(pw_grpc_limits *l);

/* Defaults overridden by the PW_GRPC_* environment. 0, or -1 with err naming
 * the bad variable (l is then unchanged). */
int pw_grpc_limits_from_env(pw_grpc_limits *l, char *err, size_t errlen);

/* addr "127.0.0.1:50051"; max_recv_bytes larger messages are refused by gRPC
 * itself with RESOURCE_EXHAUSTED; limits from the environment. NULL with err
 * on failure (also for a bad PW_GRPC_* value). */
pw_grpc_server *pw_grpc_server_new(const char *addr, size_t max_recv_bytes, char *err,
                                   size_t errlen);

/* The same with explicit limits (copied). */
pw_grpc_server *pw_grpc_server_new_limits(const char *addr, size_t max_recv_bytes,
                                          const pw_grpc_limits *limits, char *err, size_t errlen);

/* path "/iot.v1.IngestService/Publish". Register before start. 0 or -1.
 * ctx is borrowed and must outlive the server. */
int pw_grpc_server_add_method(pw_grpc_server *s, const char *path, pw_grpc_handler fn, void *ctx);

/* Binds, starts the acceptor; `workers` handlers run at once. 0 or -1 with err. */
int pw_grpc_server_start(pw_grpc_server *s, unsigned workers, char *err, size_t errlen);

/* Health of the whole server ("" and every service): SERVING from start,
 * NOT_SERVING after pw_grpc_server_set_serving(s, 0) or once stop begins.
 * Health.Watch streams see each change. */
void pw_grpc_server_set_serving(pw_grpc_server *s, int serving);

void pw_grpc_server_stats_get(pw_grpc_server *s, pw_grpc_stats *out);

/* Marks the server NOT_SERVING, stops accepting, lets running calls finish
 * for up to grace_ms, cancels the rest, joins the threads. Safe to call once
 * after start. */
void pw_grpc_server_stop(pw_grpc_server *s, int grace_ms);
void pw_grpc_server_free(pw_grpc_server *s);

/* Next request message: 1 with a malloc'd buffer (caller frees), 0 at the end
 * of the client's stream, -1 if the call failed, was cancelled, or no message
 * came within the idle timeout or the call's deadline (the client then
 * already has DEADLINE_EXCEEDED with the reason; pw_grpc_call_finish after it
 * sends nothing more). */
int pw_grpc_call_recv(pw_grpc_call *call, uint8_t **buf, size_t *len);

/* Sends one response message of a server stream (initial metadata first if
 * not sent yet). 0, or -1 if the call is gone. */
int pw_grpc_call_send(pw_grpc_call *call, const uint8_t *msg, size_t len);

/* Request metadata value for key (lower-case), or NULL. Copied into out. */
const char *pw_grpc_call_metadata(pw_grpc_call *call, const char *key, char *out, size_t outlen);

/* Milliseconds until the call's deadline: the client's or the server's
 * PW_GRPC_MAX_CALL_MS, whichever comes first (INT64_MAX when neither). */
int64_t pw_grpc_call_deadline_ms(pw_grpc_call *call);

/* Sends the response (when code is GRPC_STATUS_OK and resp != NULL) and the
 * status, waits for the client to close, and releases the call. */
void pw_grpc_call_finish(pw_grpc_call *call, const uint8_t *resp, size_t len, grpc_status_code code,
                         const char *message);

/* pw_grpc_call_finish plus one trailing metadata entry sent with the status
 * (trailer_key, lower-case and ending in "-bin" for binary values, must
 * live until the call returns; trailer is copied). NULL key: no trailer. */
void pw_grpc_call_finish_trailer(pw_grpc_call *call, const uint8_t *resp, size_t len,
                                 grpc_status_code code, const char *message,
                                 const char *trailer_key, const uint8_t *trailer,
                                 size_t trailer_len);

#endif
