# The service's container image: `aggregator serve` as a non-root user, no build tools.
# Build: docker build -t ghcr.io/fleet-aggregator/aggregator:0.1.0 .   (README: "Container image")
ARG PYTHON_VERSION=3.11

# Stage 1: build the project and its dependencies into a virtualenv. The compiler is
# here only for a dependency without a wheel for the platform; it stays in this stage.
FROM python:${PYTHON_VERSION}-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY aggregator ./aggregator
COPY remote_write ./remote_write
COPY storage ./storage
COPY promql ./promql
COPY alerting ./alerting
RUN python -m venv /opt/aggregator \
 && /opt/aggregator/bin/pip install --upgrade pip \
 && /opt/aggregator/bin/pip install . \
 && /opt/aggregator/bin/aggregator --version

# Stage 2: the runtime: the same slim Python and the virtualenv, nothing else.
FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime
LABEL org.opencontainers.image.title="fleet-aggregator" \
      org.opencontainers.image.description="One global Prometheus view over a fleet of Kubernetes clusters" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 aggregator \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/aggregator \
      --no-create-home --shell /usr/sbin/nologin aggregator \
 && mkdir -p /var/lib/aggregator \
 && chown 10001:10001 /var/lib/aggregator
COPY --from=build /opt/aggregator /opt/aggregator
ENV PATH=/opt/aggregator/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /var/lib/aggregator
EXPOSE 9095
VOLUME ["/var/lib/aggregator"]
ENTRYPOINT ["aggregator", "serve"]
# Without a config: the embedded default, listening on every interface of the container.
CMD ["--listen", ":9095", "--data-dir", "/var/lib/aggregator"]
