# syntax=docker/dockerfile:1
# fanout's runtime image: `docker build -t fanout .` then
#   docker run --read-only -e FANOUT_SOURCE_QUEUE_URL=... -e CRITICAL_QUEUE_URL=... fanout
# The build stage makes the wheel and a virtualenv with the runtime dependencies only (no
# `local` extra: no moto); the runtime stage copies that virtualenv onto a clean slim Python,
# with no compiler, no pip cache, no build tree. tests/integration/test_image_recipe.py does the
# same steps without a Docker engine.
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY fanout ./fanout
# The venv lives at the same path in both stages, so its scripts' shebangs stay valid.
RUN pip wheel --no-deps --wheel-dir /wheels . \
    && python -m venv /opt/fanout \
    && /opt/fanout/bin/pip install /wheels/fanout-*.whl \
    && /opt/fanout/bin/pip uninstall --yes pip \
    && /opt/fanout/bin/fanout --version

FROM ${PYTHON_IMAGE} AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="fanout" \
      org.opencontainers.image.description="Asyncio SQS fan-out service for Genesys Cloud events delivered by AWS EventBridge" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"
# A system user without a home or shell; numeric so runAsNonRoot can verify it.
RUN useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin fanout
COPY --from=build /opt/fanout /opt/fanout
# Baked default rules; mount your own over it (a ConfigMap at /etc/fanout) or point
# FANOUT_RULES elsewhere.
COPY rules.yaml /etc/fanout/rules.yaml
# Read-only root filesystem: bytecode was compiled at install, nothing else is written except
# under /tmp (HOME and TMPDIR point there for any library that wants a home).
ENV PATH=/opt/fanout/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp \
    FANOUT_RULES=/etc/fanout/rules.yaml \
    FANOUT_HTTP_PORT=8080 \
    FANOUT_LOG_FORMAT=json
EXPOSE 8080
USER 10001:10001
WORKDIR /tmp
STOPSIGNAL SIGTERM
ENTRYPOINT ["fanout"]
CMD ["run"]
