# One image for the API and the workers (docker-compose.yml runs both from it). See docs/operations.md.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# requirements.txt is what the application needs on every machine, the ASGI server (gunicorn, uvicorn) and
# WhiteNoise included; the test suite's tools are in requirements-dev.txt, not installed here. Every requirement
# ships a wheel for Python 3.11 on Linux (psycopg[binary] bundles libpq): no compiler needed.
COPY requirements.txt ./
RUN pip install -r requirements.txt

# The application code belongs to root and is read-only for the user the processes run as.
COPY . .

# Static files are collected at build time, hashed and compressed, with their manifest; WhiteNoise serves them.
# The key below exists only for this RUN (settings refuse to load without one when DEBUG is off); it is not kept
# in the image.
ENV EAM_STATIC_ROOT=/app/staticfiles
RUN SECRET_KEY=collectstatic-at-build-time-only python manage.py collectstatic --noinput -v 0

# Writable places for the non-root user: var/ (the SQLite default, if DATABASE_URL is not set), the artifact
# root and the development signing key's folder. Named volumes mounted there start with this ownership.
RUN groupadd --system --gid 10001 eam \
    && useradd --system --uid 10001 --gid eam --no-create-home --home-dir /app --shell /usr/sbin/nologin eam \
    && mkdir -p /app/var /data/artifacts /data/keys \
    && chown eam:eam /app/var /data/artifacts /data/keys \
    && chmod 700 /data/keys

ENV EAM_ARTIFACT_ROOT=/data/artifacts \
    EAM_KEY_DIR=/data/keys \
    WEB_CONCURRENCY=3

USER eam:eam
EXPOSE 8000

# gunicorn managing uvicorn workers (ASGI: the event streams are async views). gunicorn reads WEB_CONCURRENCY
# (worker processes), GUNICORN_CMD_ARGS (any other option) and FORWARDED_ALLOW_IPS (trusted proxies). No
# control socket: it would go under $HOME, which is read-only here, and nothing in a container uses it.
CMD ["gunicorn", "--worker-class", "uvicorn_worker.UvicornWorker", "--bind", "0.0.0.0:8000", \
     "--no-control-socket", "eam_site.asgi:application"]
