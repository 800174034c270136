# The image code runs in on the `docker` and `kubernetes` sandboxes (CODESYNC_DOCKER_IMAGE,
# CODESYNC_KUBERNETES_IMAGE): the runtimes at the paths of services/execution/languages.toml
# and nothing else, run as `nobody`. `make runner-image` builds it.
ARG RUNTIME_IMAGE=debian:bookworm-slim
FROM ${RUNTIME_IMAGE}
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 nodejs default-jdk-headless gcc g++ libc6-dev \
    && rm -rf /var/lib/apt/lists/*
USER 65534:65534
WORKDIR /tmp
