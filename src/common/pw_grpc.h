/* pw_grpc: a gRPC C core server with a worker pool. One acceptor thread
 * requests calls for every registered method; each accepted call is handed to
 * a worker, which runs the method's handler synchronously on the call's own
 * completion queue. Handlers receive raw message bytes (protobuf-c decodes). */
#ifndef PW_GRPC_H
#define PW_GRPC_H

#include <grpc/grpc.h>
#include <grpc/status.h>
#include <stddef.h>
#include <stdint.h>

typedef struct pw_grpc_server pw_grpc_server;
typedef struct pw_grpc_call pw_grpc_call;

/* Runs on a worker thread; must end the call with pw_grpc_call_finish. */
typedef void (*pw_grpc_handler)(pw_grpc_call *call, void *ctx);

/* addr "127.0.0.1:50051"; max_recv_bytes larger messages are refused by gRPC
 * itself with RESOURCE_EXHAUSTED. NULL with err on failure. */
pw_grpc_server *pw_grpc_server_new(const char *addr, size_t max_recv_bytes, char *err,
                                   size_t errlen);

/* path "/iot.v1.IngestService/Publish". Register before start. 0 or -1. */
int pw_grpc_server_add_method(pw_grpc_server *s, const char *path, pw_grpc_handler fn, void *ctx);

/* Binds, starts the acceptor and `workers` worker threads. 0 or -1 with err. */
int pw_grpc_server_start(pw_grpc_server *s, unsigned workers, char *err, size_t errlen);

/* Stops accepting, lets running calls finish for up to grace_ms, cancels the
 * rest, joins the threads. Safe to call once after start. */
void pw_grpc_server_stop(pw_grpc_server *s, int grace_ms);
void pw_grpc_server_free(pw_grpc_server *s);

/* Next request message: 1 with a malloc'd buffer (caller frees), 0 at the end
 * of the client's stream, -1 if the call failed or was cancelled. */
int pw_grpc_call_recv(pw_grpc_call *call, uint8_t **buf, size_t *len);

/* Request metadata value for key (lower-case), or NULL. Copied into out. */
const char *pw_grpc_call_metadata(pw_grpc_call *call, const char *key, char *out, size_t outlen);

/* Milliseconds until the client's deadline (INT64_MAX when none). */
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
