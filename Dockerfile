# syntax=docker/dockerfile:1
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    DATABASE_URL=sqlite:////data/bot.db

RUN useradd --create-home --uid 10001 bot \
    && mkdir /data && chown bot:bot /data

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY adapters ./adapters
COPY core ./core
RUN pip install .

USER bot
VOLUME ["/data"]
EXPOSE 9090
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9090/healthz', timeout=3)"]
# SIGTERM lets running answers finish (SHUTDOWN_GRACE_S) and leaves songs still cooking for the next start.
STOPSIGNAL SIGTERM
CMD ["python", "-m", "bot", "run"]
