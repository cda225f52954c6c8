# syntax=docker/dockerfile:1
#
# rekey: a static binary on distroless (CA certificates, tzdata, no shell),
# running as the non-root user 65532.
#
#   docker build -t rekey \
#     --build-arg VERSION=$(git describe --tags --always) \
#     --build-arg COMMIT=$(git rev-parse HEAD) \
#     --build-arg DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ) .
#   docker run --rm -v rekey-state:/var/lib/rekey \
#     -v /etc/rekey:/etc/rekey:ro -e APEXVERIFY_MANAGEMENT_TOKEN rekey daemon
#
# The config is /etc/rekey/rekey.yaml ($REKEY_CONFIG); set daemon.listen to
# 0.0.0.0:9464 in it to reach /healthz, /readyz and /metrics from outside
# the container. See deploy/kubernetes/ for a full setup.
#
# Both base images are pinned by digest (the multi-platform index digest),
# so a rebuild of a commit starts from the same bytes. To move them, look the
# tag's current digest up (crane digest IMAGE:TAG, or docker buildx
# imagetools inspect IMAGE:TAG) and change the tag and digest together. The
# Go image must be at least go.mod's go version: the official image sets
# GOTOOLCHAIN=local and does not download a newer toolchain.

# golang:1.26.8 (Debian bookworm).
ARG GO_IMAGE=golang:1.26.8@sha256:6c2a5538f964f1c82f97ad14988bf05de100d922d159d0e398b54c7b0ca0c6c9
# gcr.io/distroless/static-debian12:nonroot.
ARG RUNTIME_IMAGE=gcr.io/distroless/static-debian12:nonroot@sha256:afa5c872c891853ca7fcf1f12c3edb23f7eeef36189728842dd51042ff57f7ab

FROM ${GO_IMAGE} AS build
WORKDIR /src
# Dependencies first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
# What `rekey version` and rekey_build_info report (.git is not copied
# in, so the build args carry it).
ARG VERSION=devel
ARG COMMIT=unknown
ARG DATE=unknown
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT} -X main.date=${DATE}" \
      -o /out/rekey ./cmd/rekey
# The state directory, owned by the runtime user (distroless has no shell
# to create it there). A fresh named volume mounted here copies this owner.
RUN install -d -m 0700 -o 65532 -g 65532 /out/var/lib/rekey

FROM ${RUNTIME_IMAGE}
ARG VERSION=devel
ARG COMMIT=unknown
ARG DATE=unknown
ARG RUNTIME_IMAGE
LABEL org.opencontainers.image.title="rekey" \
      org.opencontainers.image.description="Rotates API keys without downtime" \
      org.opencontainers.image.source="https://github.com/rekeyhq/rekey" \
      org.opencontainers.image.url="https://github.com/rekeyhq/rekey" \
      org.opencontainers.image.documentation="https://github.com/rekeyhq/rekey#readme" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${COMMIT}" \
      org.opencontainers.image.created="${DATE}" \
      org.opencontainers.image.base.name="${RUNTIME_IMAGE}"
COPY --from=build /out/rekey /usr/local/bin/rekey
COPY --from=build --chown=65532:65532 /out/var/lib/rekey /var/lib/rekey
ENV REKEY_CONFIG=/etc/rekey/rekey.yaml
USER 65532:65532
WORKDIR /var/lib/rekey
VOLUME ["/var/lib/rekey"]
EXPOSE 9464
ENTRYPOINT ["rekey"]
CMD ["daemon"]
