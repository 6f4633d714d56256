# One image for every process of the connector: the Celery workers (one per queue), beat, Flower,
# the CLI and the bundled Xero sandbox. There is deliberately no ENTRYPOINT: docker-compose.yml and
# the k8s/ manifests give the exact command, in exec form, so the process (celery) is PID 1 and gets
# SIGTERM directly for a warm shutdown.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY connector ./connector
COPY workers ./workers
COPY beat ./beat
COPY sandbox ./sandbox
# Runtime dependencies only: no `[dev]` extra.
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install .

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=build /opt/venv /opt/venv
# A fixed numeric UID so Kubernetes can verify runAsNonRoot. /var/lib/connector holds the staging
# folder and beat's schedule file; it is the only place the processes write besides /tmp.
RUN groupadd --system --gid 10001 connector \
 && useradd --system --uid 10001 --gid 10001 --home-dir /home/connector --create-home connector \
 && mkdir -p /var/lib/connector/staging \
 && chown -R 10001:10001 /var/lib/connector
WORKDIR /home/connector
USER 10001:10001
