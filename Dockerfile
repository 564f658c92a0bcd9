# tickgate: the gateway (with the packages it imports) on Python 3.11.
# Build: docker build -t tickgate .   Run: see docs/operations.md, "Docker".
#
# The base is pinned to a patch release, so a rebuild does not change
# Python under the code; bump it deliberately.
FROM python:3.11.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, from the package metadata alone: this layer is built
# again only when pyproject.toml changes, not on every code edit.
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# Then the code: every package tickgate run imports, with their package data
# (pricing/data, ledger/migrations).
COPY pricing ./pricing
COPY portfolio ./portfolio
COPY orders ./orders
COPY ledger ./ledger
COPY gateway ./gateway
RUN pip install --no-deps . \
    && useradd --create-home --uid 10001 tickgate

USER tickgate
# Listen on every interface inside the container: /ws and the dashboard on
# TICKGATE_PORT (which the health check follows), the order API on
# TICKGATE_API_PORT. No signing secret is baked in: pass
# TICKGATE_AUTH_JWT_SECRET (or TICKGATE_AUTH_JWT_SECRET_FILE). The embedded
# ledger lives in the data dir: mount a volume there to keep it.
ENV TICKGATE_HOST=0.0.0.0 \
    TICKGATE_PORT=8000 \
    TICKGATE_API_HOST=0.0.0.0 \
    TICKGATE_API_PORT=8001 \
    TICKGATE_DATA_DIR=/home/tickgate/data

EXPOSE 8000 8001
HEALTHCHECK --interval=10s --timeout=3s \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('TICKGATE_PORT', '8000') + '/healthz', timeout=2)"]
CMD ["tickgate", "run"]
