# syntax=docker/dockerfile:1
# plantwatch-consumer image: Kafka to MongoDB writer (ops HTTP on 8101), with the
# dead-letter tool plantwatch-dlq (kubectl exec ... -- plantwatch-dlq list).
# Build from the repository root:
#   docker build -f docker/consumer.Dockerfile -t plantwatch-consumer:TAG .
# Stage 1 compiles with the same Debian -dev packages and CMake build as the project;
# stage 2 carries only the binary and the runtime libraries, and runs as a non-root user.

FROM debian:bookworm AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential pkg-config cmake \
      librdkafka-dev libmongoc-dev libbson-dev libprotobuf-c-dev protobuf-c-compiler \
      libgrpc-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc \
      libmicrohttpd-dev libjansson-dev libcurl4-openssl-dev uuid-dev libssl-dev libcmocka-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release \
 && cmake --build /build --target plantwatch-consumer plantwatch-dlq --parallel "$(nproc)" \
 && install -D -m 0755 "$(find /build -type f -name plantwatch-consumer -perm -u+x | head -n1)" \
      /out/usr/local/bin/plantwatch-consumer \
 && install -D -m 0755 "$(find /build -type f -name plantwatch-dlq -perm -u+x | head -n1)" \
      /out/usr/local/bin/plantwatch-dlq

FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates librdkafka1 libmongoc-1.0-0 libbson-1.0-0 libprotobuf-c1 libgrpc29 \
      libmicrohttpd12 libjansson4 libuuid1 libssl3 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 plantwatch \
 && useradd --system --uid 10001 --gid plantwatch --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin plantwatch
COPY --from=build /out/ /
USER 10001:10001
ENV PW_BIND_ADDR=0.0.0.0 \
    PW_LOG_LEVEL=info
EXPOSE 8101
ENTRYPOINT ["/usr/local/bin/plantwatch-consumer"]
