# shellcheck shell=bash
# The platform's own C services in the local stack: two producers, three
# consumers (one group) and the metrics service, each with its environment.

PW_PRODUCERS=(1 2)
PW_CONSUMERS=(1 2 3)

# The consumers may run from another build tree: ./plantwatch test starts
# them from the sanitizer build (PW_CONSUMER_BUILD=build-asan at `up`, kept
# in $PW_STATE/consumer-build so later restarts use the same build).
pw_consumer_build() {
    if [ -n "${PW_CONSUMER_BUILD:-}" ]; then
        echo "$PW_CONSUMER_BUILD"
    else
        cat "$PW_STATE/consumer-build" 2>/dev/null || echo "$PW_BUILD"
    fi
}

pw_bin() {
    local build=$PW_BUILD
    if [ "$1" = consumer ]; then build=$(pw_consumer_build); fi
    echo "$build/src/$1/plantwatch-$1"
}

pw_common_env() {
    echo "PW_BIND_ADDR=127.0.0.1"
    echo "PW_LOG_LEVEL=${PW_LOG_LEVEL:-info}"
    echo "PW_KAFKA_BOOTSTRAP=127.0.0.1:9093"
    echo "PW_KAFKA_CA_FILE=$PW_STATE/secrets/ca.pem"
    echo "PW_MONGO_DB=${PW_MONGO_DB:-plantwatch}"
    # the local stack logs each store query shape's plan once (tests read it)
    echo "PW_STORE_EXPLAIN=${PW_STORE_EXPLAIN:-1}"
}

# Kafka passwords are handed over as files, never on the command line. The
# file is replaced atomically, and only when it differs: a service starting
# at the same moment never reads it half written.
pw_password_file() {
    local user=$1 var f=$PW_STATE/secrets/kafka-$1.password
    pw_load_kafka_secrets
    var="PW_KAFKA_${user^^}_PASSWORD"
    if [ "$(cat "$f" 2>/dev/null)" != "${!var}" ]; then
        (umask 077 && printf '%s' "${!var}" >"$f.$$" && mv -f "$f.$$" "$f")
    fi
    echo "$f"
}

pw_service_env() {
    local name=$1 n=${1##*-}
    pw_common_env
    echo "PW_INSTANCE=$name"
    case $name in
    producer-*)
        echo "PW_HTTP_PORT=$((8080 + n))"
        echo "PW_GRPC_PORT=$((50050 + n))"
        # a short gRPC idle timeout, so tests see idle streams end (default 30 s)
        echo "PW_GRPC_IDLE_TIMEOUT_MS=${PW_GRPC_IDLE_TIMEOUT_MS:-3000}"
        echo "PW_KAFKA_USERNAME=producer"
        echo "PW_KAFKA_PASSWORD_FILE=$(pw_password_file producer)"
        # ingest only from the gateway, which sends this secret (scripts/stack/gateway.sh)
        echo "PW_GATEWAY_SECRET_FILE=$(pw_gateway_secret_init)"
        ;;
    consumer-*)
        echo "PW_HTTP_PORT=$((8100 + n))"
        # a sanitizer build reports memory errors and undefined behaviour in the log
        echo "ASAN_OPTIONS=detect_leaks=0:abort_on_error=0"
        echo "UBSAN_OPTIONS=print_stacktrace=1"
        echo "PW_MONGO_URI_FILE=$PW_STATE/secrets/consumer-mongodb.uri"
        echo "PW_KAFKA_USERNAME=consumer"
        echo "PW_KAFKA_PASSWORD_FILE=$(pw_password_file consumer)"
        ;;
    dlq)
        # the DLQ tool reads sensor-dlq as the consumer and publishes replays
        # to the source topics as the producer (the users that hold those rights)
        echo "PW_KAFKA_USERNAME=consumer"
        echo "PW_KAFKA_PASSWORD_FILE=$(pw_password_file consumer)"
        echo "PW_DLQ_REPLAY_USERNAME=producer"
        echo "PW_DLQ_REPLAY_PASSWORD_FILE=$(pw_password_file producer)"
        ;;
    metrics)
        echo "PW_HTTP_PORT=8090"
        echo "PW_MONGO_URI_FILE=$PW_STATE/secrets/metrics-mongodb.uri"
        echo "PW_GRPC_PORT=50061"
        echo "PW_GRPC_IDLE_TIMEOUT_MS=${PW_GRPC_IDLE_TIMEOUT_MS:-3000}"
        # the pipeline view reads end and group offsets; the local cluster has no
        # ACLs, so the consumer's credentials serve (Kubernetes: KafkaUser metrics)
        echo "PW_KAFKA_USERNAME=consumer"
        echo "PW_KAFKA_PASSWORD_FILE=$(pw_password_file consumer)"
        # a short stall threshold, so tests see a stalled partition (default 30 s)
        echo "PW_METRICS_STALL_SECONDS=${PW_METRICS_STALL_SECONDS:-10}"
        ;;
    esac
}

pw_service_port() {
    local n=${1##*-}
    case $1 in
    producer-*) echo $((8080 + n)) ;;
    consumer-*) echo $((8100 + n)) ;;
    metrics) echo 8090 ;;
    esac
}

pw_service_kind() { echo "${1%%-*}"; }

pw_start_service() {
    local name=$1 kind bin port
    kind=$(pw_service_kind "$name")
    bin=$(pw_bin "$kind")
    [ -x "$bin" ] || pw_die "$bin is missing: run ./plantwatch build"
    port=$(pw_service_port "$name")
    if pw_alive "$name" && [ "$bin" -nt "$PW_STATE/pids/$name.pid" ]; then
        pw_info "$name runs an older build; restarting it"
        pw_kill "$name" TERM 30
    fi
    mapfile -t envs < <(pw_service_env "$name")
    pw_spawn "$name" "$PW_STATE/logs/$name.log" env "${envs[@]}" "$bin"
}

pw_wait_service() {
    local name=$1 port
    port=$(pw_service_port "$name")
    pw_wait_http "http://127.0.0.1:$port/readyz" "${2:-90}" "$name" ||
        pw_die "$name is not ready on :$port (log: $PW_STATE/logs/$name.log)"
}

pw_all_services() {
    local i
    for i in "${PW_CONSUMERS[@]}"; do echo "consumer-$i"; done
    for i in "${PW_PRODUCERS[@]}"; do echo "producer-$i"; done
    echo metrics
}

pw_start_services() {
    local name
    if [ -n "${PW_CONSUMER_BUILD:-}" ]; then
        echo "$PW_CONSUMER_BUILD" >"$PW_STATE/consumer-build"
    else
        rm -f "$PW_STATE/consumer-build"
    fi
    pw_info "starting consumers 1-3, producers 1-2 and metrics"
    for name in $(pw_all_services); do pw_start_service "$name"; done
    for name in $(pw_all_services); do pw_wait_service "$name"; done
}

pw_stop_services() {
    local name
    for name in $(pw_all_services | tac); do pw_kill "$name" TERM 30; done
}

pw_status_services() {
    local name port grpc h pid
    for name in $(pw_all_services); do
        port=$(pw_service_port "$name")
        grpc=""
        case $name in producer-*) grpc=" grpc :$((50050 + ${name##*-}))" ;; metrics) grpc=" grpc :50061" ;; esac
        if pw_alive "$name"; then
            pid=$(pw_pid "$name")
            h=$(pw_http_health "http://127.0.0.1:$port/readyz")
            [ "$h" = ok ] || h="not ready"
        else
            pid=- h=stopped
        fi
        pw_status_line "$name" "$pid" "http :$port$grpc" "$h"
    done
}
