# ragsite on Hugging Face Spaces (Docker SDK): port 7860, non-root uid 1000, behind the
# platform's one HTTPS proxy (TRUSTED_PROXY_HOPS=1, BEHIND_HTTPS_PROXY=true; see
# docs/security.md). SECRET_KEY is generated into /data on first start unless set as a
# Space secret.
# The steps are the ones CI proves: `uv sync --frozen --no-dev`, then the start command
# of bin/serve (`manage.py serve`: migrate, ingest the book if the index is empty, and run
# `uvicorn ragsite.asgi:application` in one process — the embedded Qdrant is single-process).
FROM python:3.12-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    RAGSITE_DATA_DIR=/data \
    EMBEDDING_MODEL_CACHE=/opt/models \
    PORT=7860 \
    ALLOWED_HOSTS=* \
    TRUSTED_PROXY_HOPS=1 \
    BEHIND_HTTPS_PROXY=true

RUN pip install --no-cache-dir uv==0.13.9 \
    && useradd --create-home --uid 1000 user \
    && mkdir -p /data /opt/venv /opt/models /app \
    && chown -R user:user /data /opt/venv /opt/models /app

USER 1000
WORKDIR /app

# Dependencies first, so code changes do not reinstall them.
COPY --chown=user:user pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project

COPY --chown=user:user . .
# Then derive the int8 embedding graph (docs/embeddings.md) now, not at the first start.
RUN uv sync --frozen --no-dev \
    && python -c "from ragsite.rag.embeddings import LocalEmbedder; LocalEmbedder(graph='int8')"

EXPOSE 7860
# /api/health answers within about a second whatever the LLM does (its probe runs in
# the background), so a 3 s timeout only fires when the process itself is stuck.
HEALTHCHECK --interval=30s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:7860/api/health', timeout=2).status != 200)"]

CMD ["python", "manage.py", "serve", "--host", "0.0.0.0", "--port", "7860"]
