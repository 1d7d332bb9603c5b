# syntax=docker/dockerfile:1
# Images of the Sortline processes, one build target each:
#   docker build --target camera-agent -t sortline-camera-agent .
#   docker build --target worker       -t sortline-worker .
#   docker build --target worker-gpu   -t sortline-worker-gpu .   (CUDA base image: see below)
# Each target installs only its pip extra (the camera box gets no onnxruntime), runs as a non-root
# user, and takes secrets from files (deploy/docker/entrypoint.sh).

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# A fixed uid/gid so Kubernetes securityContext (runAsUser 10001) and file ownership agree.
RUN groupadd --system --gid 10001 sortline \
    && useradd --system --uid 10001 --gid sortline --no-create-home --shell /usr/sbin/nologin sortline
WORKDIR /opt/sortline
COPY deploy/docker/entrypoint.sh /usr/local/bin/sortline-entrypoint
# The contract package is shared by both processes.
COPY pyproject.toml README.md ./
COPY sortline ./sortline
ENTRYPOINT ["sortline-entrypoint"]

FROM base AS camera-agent
COPY camera_agent ./camera_agent
# Non-editable install: the code lives in site-packages, the source copy is not needed at run time.
RUN pip install ".[camera]" && rm -rf /opt/sortline/build
USER 10001:10001
EXPOSE 9101
ENV SORTLINE_METRICS_PORT=9101
# --source is required and site-specific: compose and Kubernetes pass it.
CMD ["camera-agent"]

FROM base AS worker
COPY sortline_runtime ./sortline_runtime
COPY classifier_worker ./classifier_worker
RUN pip install ".[worker]" && rm -rf /opt/sortline/build
USER 10001:10001
EXPOSE 9102
ENV SORTLINE_METRICS_PORT=9102
# The model is not baked in: it is mounted (compose volume, Kubernetes volume) and passed with --model,
# so a promoted model does not need a new image.
CMD ["classifier-worker"]

# GPU worker: build with a CUDA runtime base, e.g.
#   docker build --target worker-gpu --build-arg PYTHON_IMAGE=<CUDA 13 runtime image with Python 3.11> .
# onnxruntime-gpu replaces onnxruntime (same module, CUDA execution provider); torch + torchvision
# decode each batch's JPEGs with nvJPEG on the GPU (--decode auto picks that on a GPU).
FROM base AS worker-gpu
COPY sortline_runtime ./sortline_runtime
COPY classifier_worker ./classifier_worker
RUN pip install ".[gpu]" && pip uninstall --yes onnxruntime && pip install "onnxruntime-gpu>=1.18" \
    && rm -rf /opt/sortline/build
USER 10001:10001
EXPOSE 9102
ENV SORTLINE_METRICS_PORT=9102 SORTLINE_DEVICE=cuda
CMD ["classifier-worker"]
