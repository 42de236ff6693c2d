# syntax=docker/dockerfile:1
# The Safeshare image: `safeshare worker`, `safeshare codec-server`, `safeshare db upgrade`.
# Dependencies come only from the hash-pinned runtime lock; no key, password or token is ever
# copied in (.dockerignore keeps var/, secrets/ and .env out of the build context).

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/safeshare
WORKDIR /src
COPY requirements-runtime.lock ./
RUN /opt/safeshare/bin/pip install --require-hashes --no-deps -r requirements-runtime.lock
COPY pyproject.toml ./
COPY schemas/ schemas/
COPY workflows/ workflows/
COPY activities/ activities/
COPY database/ database/
COPY crypto/ crypto/
COPY store/ store/
COPY clients/ clients/
COPY workers/ workers/
# Our own code, against the locked dependencies already installed (nothing else is fetched).
RUN /opt/safeshare/bin/pip install --no-deps --no-build-isolation .
# Bytecode for everything installed, written here because the image runs with
# PYTHONDONTWRITEBYTECODE=1: the worker's sandbox imports the workflow code afresh for every
# workflow run, and without .pyc each one compiled it from source (docs/PERFORMANCE.md). pip
# compiles by default; this makes it not depend on that. COPY --from keeps the sources' mtimes,
# so the .pyc stay valid in the final stage.
RUN /opt/safeshare/bin/python -m compileall -q /opt/safeshare/lib

FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 safeshare \
 && useradd --system --uid 10001 --gid safeshare --home-dir /var/lib/safeshare --shell /usr/sbin/nologin safeshare \
 && install -d -o safeshare -g safeshare -m 0700 /var/lib/safeshare
COPY --from=build /opt/safeshare /opt/safeshare
ENV PATH=/opt/safeshare/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SAFESHARE_HOME=/var/lib/safeshare
USER safeshare:safeshare
WORKDIR /var/lib/safeshare
# 9464: worker metrics (SAFESHARE_METRICS_PORT); 8234: codec server (SAFESHARE_CODEC_PORT).
EXPOSE 9464 8234
ENTRYPOINT ["safeshare"]
CMD ["worker"]
