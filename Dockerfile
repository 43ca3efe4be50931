# syntax=docker/dockerfile:1
# docker build -t studio-bot .
# docker run --env-file .env -v bot-data:/app/data -p 127.0.0.1:9090:9090 --stop-timeout 40 studio-bot
# --stop-timeout must be longer than SHUTDOWN_GRACE_S (default 20 s) so running answers can
# finish: Docker's default of 10 s would kill the bot mid-answer. docs/deployment.md has more.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DATABASE_URL=sqlite:////app/data/bot.db \
    METRICS_HOST=0.0.0.0

# The database lives on the /app/data volume, owned by the user the bot runs as. .env.example's
# DATABASE_URL=sqlite:///data/bot.db is relative to this WORKDIR: the same file as the ENV above.
WORKDIR /app
RUN useradd --create-home --uid 10001 bot \
    && mkdir -p /app/data && chown bot:bot /app/data

# Dependencies first, from pyproject.toml alone: editing the source doesn't reinstall them.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt

COPY README.md ./
COPY bot ./bot
COPY adapters ./adapters
COPY core ./core
RUN pip install --no-deps .

USER bot
VOLUME ["/app/data"]
# 3000: Slack HTTP mode (SLACK_PORT; unused in Socket Mode). 9090: /healthz, /readyz, /metrics
# (METRICS_PORT; the health check follows it, and passes without checking when it is 0).
EXPOSE 3000 9090
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; port = os.environ.get('METRICS_PORT', '9090'); port == '0' or urllib.request.urlopen('http://127.0.0.1:%s/healthz' % port, timeout=3)"]
# SIGTERM lets running answers finish (SHUTDOWN_GRACE_S) and leaves songs still cooking for the next start.
STOPSIGNAL SIGTERM
CMD ["python", "-m", "bot", "run"]
