# fullspectrum app image: Streamlit lab on the bundled cached runs, CPU PyTorch.
# Build: docker build -t fullspectrum .   Run: docker run -p 8501:8501 fullspectrum
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    STREAMLIT_BROWSER_GATHER_USAGE_STATS=false

# Chromium for the app's server-side PNG/SVG chart exports (kaleido drives it).
RUN apt-get update && apt-get install -y --no-install-recommends chromium \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 1000 lab
WORKDIR /home/lab/fullspectrum

# CPU-only PyTorch first, so the project's dependencies do not pull a CUDA build.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN pip install --index-url "${TORCH_INDEX_URL}" torch==2.13.0

COPY --chown=lab:lab . .
RUN pip install -e .

USER lab
EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4)"

# Inside a container the server must listen on all interfaces; the port is published explicitly.
CMD ["fullspectrum", "app", "--address", "0.0.0.0", "--port", "8501"]
