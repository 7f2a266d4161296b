# syntax=docker/dockerfile:1
#
# aadgate, the proxy alone, in a small image that runs as a non-root user,
# works with a read-only root filesystem and is configured by the
# environment (AADGATE_*; files only if you mount them and name them in
# AADGATE_CONFIG). See docs/deploy.md.
#
#   docker build -t aadgate .
#   docker run --read-only -p 4180:4180 \
#     -e AADGATE_PUBLIC_URL=https://dash.contoso.com -e AADGATE_UPSTREAM=http://app:8050 \
#     -e AADGATE_OIDC_TENANT=... -e AADGATE_OIDC_CLIENT_ID=... \
#     -e AADGATE_OIDC_CLIENT_SECRET_FILE=/run/secrets/client-secret \
#     -e AADGATE_SESSION_SECRET_FILE=/run/secrets/session-secret \
#     -v "$PWD/secrets:/run/secrets:ro" aadgate
#
# Build arguments:
#   FEATURES  cargo features of aadgate-cli (default "redis": sessions in
#             Redis for replicas). Add "dev-idp" for an image that can also
#             run `aadgate demo` and `aadgate dev-idp` (never in production).

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
ARG FEATURES=redis
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p aadgate-cli --no-default-features --features "${FEATURES}" \
 && cp target/release/aadgate /usr/local/bin/aadgate
# The file session store's directory, owned by the runtime user: the
# runtime image has no shell to create it.
RUN install -d -m 0700 -o 65532 -g 65532 /state/aadgate

# glibc, libgcc and CA certificates, no shell, no package manager; the
# `nonroot` variant's user is 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /usr/local/bin/aadgate /usr/local/bin/aadgate
# (/state/ holds the directory aadgate itself, so that its owner and 0700 mode
# are copied, not only its contents.)
COPY --from=build --chown=65532:65532 /state/ /var/lib/
# Defaults for a container; every one can be overridden with -e.
#  - listen on every interface of the container (the default, 127.0.0.1,
#    is unreachable from outside it);
#  - sessions in the one writable place: /var/lib/aadgate (a volume, so
#    `docker run --read-only` works; mount an emptyDir there in Kubernetes,
#    or use a Redis store and nothing needs to be writable);
#  - JSON log lines for log collectors.
ENV AADGATE_LISTEN=0.0.0.0:4180 \
    AADGATE_SESSION_STORE=file:/var/lib/aadgate/sessions \
    AADGATE_LOG_FORMAT=json
VOLUME ["/var/lib/aadgate"]
USER 65532:65532
EXPOSE 4180
# No HEALTHCHECK: the image has no shell or curl to run one. Orchestrators
# probe GET /healthz (alive) and GET /readyz (ready to serve) on port 4180.
# SIGTERM: /readyz fails, open requests finish within shutdown_timeout_secs
# (default 30 s), exit 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/aadgate"]
CMD ["proxy"]
