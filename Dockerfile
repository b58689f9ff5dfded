# syntax=docker/dockerfile:1
#
# ragspin as a plain container: the official Spin 4.0.x image serving the
# components built here.
#
#   docker build -t ragspin-server:dev .
#   docker run --rm -p 3000:80 \
#     -e SPIN_VARIABLE_JWT_SECRET="$(openssl rand -base64 48)" \
#     -e SPIN_VARIABLE_ADMIN_PASSWORD_HASH='$argon2id$...' \
#     -v ragspin-state:/app/.spin ragspin-server:dev
#
# The image's runtime config keeps KV and SQLite in files under /app/.spin
# (one replica); on a cluster mount k8s/runtime-config/<env> and pass
# `--runtime-config-file` (k8s/plain/deployment.yaml does).
# The Spin image version is pinned with the SpinKube "spintainer" executor
# (k8s/spinkube/executors.yaml); scripts/validate_deploy.py checks both.

# ---------------------------------------------------------------- build
FROM rust:1.95-bookworm AS build
# The Spin CLI from the official image (a static binary).
COPY --from=ghcr.io/spinframework/spin:v4.0.2 /usr/local/bin/spin /usr/local/bin/spin
RUN rustup target add wasm32-wasip2
WORKDIR /src
COPY . .
# What `make build` runs when Spin is installed: each component's
# `[component.*.build] command` from spin.toml.
RUN spin build
# An empty, writable state folder for the runtime stage (distroless has no
# shell to make one).
RUN mkdir -p /out/state

# ----------------------------------------------------------- healthcheck
# A static wget for HEALTHCHECK: the Spin image is distroless (no shell).
FROM busybox:1.37.0-musl AS probe

# --------------------------------------------------------------- runtime
FROM ghcr.io/spinframework/spin:v4.0.2 AS runtime
WORKDIR /app
COPY spin.toml runtime-config.toml ./
COPY --from=build /src/target/wasm32-wasip2/release/health.wasm \
                  /src/target/wasm32-wasip2/release/query.wasm \
                  /src/target/wasm32-wasip2/release/ingest.wasm \
                  /src/target/wasm32-wasip2/release/auth.wasm \
                  /src/target/wasm32-wasip2/release/web.wasm \
                  /app/target/wasm32-wasip2/release/
COPY --from=build --chown=65532:65532 /out/state /app/.spin
COPY --from=probe /bin/busybox /usr/local/bin/busybox
# distroless's "nonroot" user. Docker lets non-root bind port 80
# (net.ipv4.ip_unprivileged_port_start=0); on Kubernetes set that sysctl
# (k8s/plain/deployment.yaml) or listen on a high port.
USER 65532:65532
ENV HOME=/tmp
VOLUME ["/app/.spin"]
EXPOSE 80
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/busybox", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:80/.well-known/spin/health"]
ENTRYPOINT ["/usr/local/bin/spin"]
CMD ["up", "--from", "/app/spin.toml", "--listen", "0.0.0.0:80", "--runtime-config-file", "/app/runtime-config.toml"]
