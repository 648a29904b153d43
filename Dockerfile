# nomad-metrics container image: one fully static (musl) binary in an empty
# (`scratch`) image, running as an unprivileged numeric user. ENTRYPOINT is the
# binary, so `docker run IMAGE start --client ...` works with the original command line (README, "Quick start").
#
# Two ways to build the same runtime image (docs/deploy.md, "Building the image"):
#
#   1. Full multi-stage build (pulls the Rust image for the build stage):
#        docker build -t nomad-metrics:0.2.0 .
#
#   2. From a static binary built on the host. Nothing is pulled: the final
#      stage starts FROM scratch, so this works without any image registry.
#        cargo build --release --locked --target x86_64-unknown-linux-musl
#        install -D -m 0755 target/x86_64-unknown-linux-musl/release/nomad-metrics dist/nomad-metrics
#        install -D -m 0644 /etc/ssl/certs/ca-certificates.crt dist/ca-certificates.crt
#        docker build --target runtime-prebuilt -t nomad-metrics:0.2.0 .
#      (podman/buildah: same arguments.)
#
# STOPSIGNAL is left at the default SIGTERM: the daemon exits 0 on it within a
# second, well inside the default kill timeouts of `docker stop` and Nomad.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

# ---------------------------------------------------------------------------
# Build stage: static binary for x86_64-unknown-linux-musl.
# ---------------------------------------------------------------------------
FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS builder

# musl-tools gives the musl C compiler that ring's build script (rustls) uses.
# Its version follows the Debian release pinned in the image tag above.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends musl-tools \
    && rm -rf /var/lib/apt/lists/* \
    && rustup target add x86_64-unknown-linux-musl

WORKDIR /src
COPY . .

# Cache mounts keep the crate registry and the target directory between builds
# (BuildKit, podman and buildah all support them); the binary is copied out of
# the cached directory because cache mounts are not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --target x86_64-unknown-linux-musl --bin nomad-metrics \
    && install -D -m 0755 target/x86_64-unknown-linux-musl/release/nomad-metrics /out/nomad-metrics \
    && install -D -m 0644 /etc/ssl/certs/ca-certificates.crt /out/ca-certificates.crt

# ---------------------------------------------------------------------------
# Runtime base: everything but the two files, shared by both final stages.
# ---------------------------------------------------------------------------
FROM scratch AS runtime-base

LABEL org.opencontainers.image.title="nomad-metrics" \
      org.opencontainers.image.description="Polls the Nomad HTTP API and sends cluster and node gauges to DogStatsD" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.documentation="docs/deploy.md in the source repository"

# The binary trusts its bundled web PKI roots; the system bundle is there for
# tools and libraries that read SSL_CERT_FILE. A private CA goes in NOMAD_CACERT.
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt

# Numeric UID:GID so that Kubernetes' runAsNonRoot can check it without /etc/passwd.
USER 65532:65532

ENTRYPOINT ["/usr/local/bin/nomad-metrics"]
CMD ["--help"]

# ---------------------------------------------------------------------------
# Final stage from a host-built static binary: `--target runtime-prebuilt`,
# with dist/nomad-metrics (mode 0755) and dist/ca-certificates.crt (0644) in
# the build context. BuildKit, podman and buildah skip the build stage then;
# the legacy builder (DOCKER_BUILDKIT=0) would not.
# ---------------------------------------------------------------------------
FROM runtime-base AS runtime-prebuilt
COPY dist/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY dist/nomad-metrics /usr/local/bin/nomad-metrics

# Per-build labels come after the binary, so that a new binary always gets
# new labels: buildah (1.28 at least) leaves ARG values out of its layer cache
# key and would otherwise reuse a cached label layer with a stale revision. For
# an exact relabel of an unchanged binary there, add --no-cache.
ARG VERSION=0.2.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}"

# ---------------------------------------------------------------------------
# Final stage of the full build (the default target: keep it last).
# ---------------------------------------------------------------------------
FROM runtime-base AS runtime
COPY --from=builder /out/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=builder /out/nomad-metrics /usr/local/bin/nomad-metrics

ARG VERSION=0.2.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}"
