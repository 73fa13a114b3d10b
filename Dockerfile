# etcdmonitor image: one image for web (runmonitor), worker and beat (celery) and migrate.
# Built by `docker compose up -d`; validated without a Docker engine by tests/deploy/test_compose.py.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- builder: the pinned requirements (each ships a wheel) and our C parser in a virtualenv -----
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
COPY requirements.txt /tmp/requirements.txt
RUN /opt/venv/bin/pip install -r /tmp/requirements.txt
# The C parser of monitoring.metrics (native/promtext): built here, where a compiler may be.
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
COPY native/promtext /tmp/promtext
RUN /opt/venv/bin/pip install --no-deps /tmp/promtext

# --- final: venv + app, owned by root, run as an unprivileged user -------------------------------
FROM ${PYTHON_IMAGE} AS final
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DATA_DIR=/data
RUN groupadd --system etcdmonitor \
    && useradd --system --gid etcdmonitor --create-home --home-dir /home/etcdmonitor \
       --shell /usr/sbin/nologin etcdmonitor \
    && mkdir /data \
    && chown etcdmonitor:etcdmonitor /data \
    && chmod 0700 /data
COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
COPY . /app
# Static files are baked in; the throwaway key and data dir exist only for this one command.
RUN DJANGO_SECRET_KEY=collectstatic-at-build-time-only DATA_DIR=/tmp/build-data \
       python manage.py collectstatic --noinput \
    && rm -rf /tmp/build-data \
    && python -m compileall -q /app
USER etcdmonitor
# Runtime files (initial admin password); the database itself is PostgreSQL in compose.
VOLUME ["/data"]
EXPOSE 9090
# No curl in slim: python's urllib, with a Host that DJANGO_ALLOWED_HOSTS accepts.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; host = (os.environ.get('DJANGO_ALLOWED_HOSTS') or 'localhost').split(',')[0].strip().lstrip('.').replace('*', 'localhost') or 'localhost'; urllib.request.urlopen(urllib.request.Request('http://127.0.0.1:9090/healthz', headers={'Host': host}), timeout=4)"]
# The same server as `make run` (runmonitor: gunicorn processes running uvicorn event loops).
CMD ["python", "manage.py", "runmonitor", "--bind", "0.0.0.0:9090"]
