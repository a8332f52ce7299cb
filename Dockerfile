# One image for the API and the workers (docker-compose.yml runs both from it). See docs/operations.md.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The production WSGI server. requirements.txt is what the application needs on every machine (the test
# suite's tools are in requirements-dev.txt, not installed here); gunicorn is needed only to serve HTTP in this
# image, so it is pinned here (`runserver` is a development server and Django's documentation says not to use
# it in production).
ARG GUNICORN_VERSION=27.0.1

WORKDIR /app

# Every requirement ships a wheel for Python 3.11 on Linux (psycopg[binary] bundles libpq): no compiler needed.
COPY requirements.txt ./
RUN pip install -r requirements.txt "gunicorn==${GUNICORN_VERSION}"

# The application code belongs to root and is read-only for the user the processes run as.
COPY . .

# Static files (admin, API docs) are collected at build time. The key below exists only for this RUN
# (settings refuse to load without one when DEBUG is off); it is not kept in the image.
ENV STATIC_ROOT=/app/staticfiles
RUN SECRET_KEY=collectstatic-at-build-time-only python manage.py collectstatic --noinput

# Writable places for the non-root user: var/ (the SQLite default, if DATABASE_URL is not set), the artifact
# root and the development signing key's folder. Named volumes mounted there start with this ownership.
RUN groupadd --system --gid 10001 eam \
    && useradd --system --uid 10001 --gid eam --no-create-home --home-dir /app --shell /usr/sbin/nologin eam \
    && mkdir -p /app/var /data/artifacts /data/keys \
    && chown eam:eam /app/var /data/artifacts /data/keys \
    && chmod 700 /data/keys

ENV EAM_ARTIFACT_ROOT=/data/artifacts \
    WEB_CONCURRENCY=3

USER eam:eam
EXPOSE 8000

# gunicorn reads WEB_CONCURRENCY (number of worker processes) and GUNICORN_CMD_ARGS (any other option).
# No control socket: it would go under $HOME, which is read-only here, and nothing in a container uses it.
CMD ["gunicorn", "--bind", "0.0.0.0:8000", "--no-control-socket", "--access-logfile", "-", "eam_site.wsgi:application"]
