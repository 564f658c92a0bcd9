FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY pricing ./pricing
COPY gateway ./gateway
RUN pip install . \
    && useradd --create-home --uid 10001 tickgate

USER tickgate
# Listen on every interface inside the container. No signing secret is baked
# in: pass TICKGATE_AUTH_JWT_SECRET (or TICKGATE_AUTH_JWT_SECRET_FILE).
ENV TICKGATE_HOST=0.0.0.0 \
    TICKGATE_DATA_DIR=/home/tickgate/data

EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
CMD ["tickgate", "run"]
