# syntax=docker/dockerfile:1
# The transitwatch image: one image for `transitwatch worker`, `transitwatch notify` and the
# one-off commands (produce, replay, silence, redeliver). docker-compose.yml builds it.
#
#   docker build -t transitwatch:local .
#   docker run --rm transitwatch:local --help
#
# Every setting is a TRANSITWATCH_* environment variable (streams/settings.py, .env.example).

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# -- build: install the package and its dependencies into a virtual environment ---------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/transitwatch
WORKDIR /src
# Only what the package needs (.dockerignore keeps the rest out of the context).
COPY pyproject.toml README.md LICENSE constraints.txt ./
COPY transitwatch ./transitwatch
COPY detectors ./detectors
COPY streams ./streams
# The worker's and the notifier's extras, every distribution at the version constraints.txt pins
# (transitive ones too), so a rebuild installs what the last one did. constraints.txt is made by
# pip-tools; its header has the command (run it again after changing a dependency).
RUN /opt/transitwatch/bin/pip install --no-compile -c constraints.txt '.[service,notify]' \
 && /opt/transitwatch/bin/python -m compileall -q /opt/transitwatch/lib \
 && /opt/transitwatch/bin/transitwatch --help > /dev/null

# -- run: the slim base, the virtual environment and an unprivileged user ---------------------
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="transitwatch" \
      org.opencontainers.image.description="Flags surges of dual-use exports to Russia's neighbours (Kafka/Faust service)" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 transitwatch \
 && useradd --system --uid 10001 --gid transitwatch --home-dir /var/lib/transitwatch \
        --no-create-home --shell /usr/sbin/nologin transitwatch \
 && mkdir -p /var/lib/transitwatch/state \
 && chown -R transitwatch:transitwatch /var/lib/transitwatch
COPY --from=build /opt/transitwatch /opt/transitwatch
ENV PATH=/opt/transitwatch/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TRANSITWATCH_STATE_DIR=/var/lib/transitwatch/state \
    TRANSITWATCH_WEB_HOST=0.0.0.0 \
    TRANSITWATCH_NOTIFY_WEB_HOST=0.0.0.0 \
    HEALTHCHECK_URL=http://127.0.0.1:6066/ready
WORKDIR /var/lib/transitwatch
USER 10001:10001
# 6066: the worker's /metrics, /healthz, /ready, /alerts; 6067: the notifier's.
EXPOSE 6066 6067
# No curl in the slim image: Python's urllib. Any answer but 200 (503 while restoring state
# or rebalancing), a refused connection or a time-out is unhealthy. The notifier's service in
# docker-compose.yml sets HEALTHCHECK_URL to its own port.
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=4 \
    CMD ["python", "-c", "import os, sys, urllib.request; sys.exit(0 if urllib.request.urlopen(os.environ['HEALTHCHECK_URL'], timeout=4).status == 200 else 1)"]
ENTRYPOINT ["transitwatch"]
CMD ["worker"]
