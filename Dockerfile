# syntax=docker/dockerfile:1
# The Hotline image: one image for the backend (`hotline serve`, the default command), the
# worker (`hotline worker`), the bot (`hotline bot`) and one-shot commands (`hotline db upgrade`,
# `hotline city add`, ...). See docs/operations.md and compose.yml.
#
# Stage 1 builds wheels of the project and of every dependency; stage 2 installs only those
# wheels into a slim Python, without the dev extras, compilers or the source tree.
# tests/deploy/test_image.py repeats these steps without Docker (same COPY list, same pip
# commands) and runs the installed package, so CI notices files missing from the wheel.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
# Only what the wheel is built from (README.md is the package's long description).
COPY pyproject.toml README.md ./
COPY hotline ./hotline
COPY bot ./bot
COPY kb ./kb
COPY migrations ./migrations
RUN pip wheel --wheel-dir /wheels .

FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    HOTLINE_ENV=production \
    HOTLINE_HOST=0.0.0.0 \
    HOTLINE_PORT=8000
# A fixed numeric id, so volume permissions and `runAsUser` policies can name it.
RUN groupadd --system --gid 10001 hotline \
    && useradd --system --uid 10001 --gid hotline --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin hotline \
    && mkdir -p /app/var \
    && chown -R hotline:hotline /app
# The wheels are mounted for this one step, so they do not stay in a layer of the image.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --find-links /wheels hotline
WORKDIR /app
USER hotline:hotline
EXPOSE 8000
# Readiness, not just liveness: the database answers and is migrated. compose.yml sets its own
# checks for the worker and the bot, which serve no API.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('HOTLINE_PORT', '8000'), timeout=4)"
CMD ["hotline", "serve"]
