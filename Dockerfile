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

FROM golang:1.26 AS build
WORKDIR /src
# Dependencies first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
# What `rekey version` and rekey_build_info report (.git is not copied in).
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

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/rekey /usr/local/bin/rekey
COPY --from=build --chown=65532:65532 /out/var/lib/rekey /var/lib/rekey
ENV REKEY_CONFIG=/etc/rekey/rekey.yaml
USER 65532:65532
WORKDIR /var/lib/rekey
VOLUME ["/var/lib/rekey"]
EXPOSE 9464
ENTRYPOINT ["rekey"]
CMD ["daemon"]
