# syntax=docker/dockerfile:1
# Images of the Sortline processes, one build target each:
#   docker build --target camera-agent -t sortline-camera-agent --build-arg REVISION=$(git rev-parse HEAD) .
#   docker build --target worker       -t sortline-worker       --build-arg REVISION=$(git rev-parse HEAD) .
#   docker build --target worker-gpu   -t sortline-worker-gpu   ...   (CUDA base image: see below)
#   docker build --target trainer      -t sortline-trainer      ...   (the Kubernetes Jobs in deploy/k8s/jobs)
#   docker build --target ejector-bridge -t sortline-ejector-bridge ...   (beside the line's PLC)
# Each target installs only its pip extra, at the versions constraints.txt pins (the versions the
# tests ran), keeps only the commands it can run, runs as a non-root user, and reads its broker URL
# from a secret file (SORTLINE_AMQP_URL_FILE) or SORTLINE_AMQP_URL: without either it exits 2, it
# never tries guest@localhost.

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS base
ARG REVISION=unknown
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SORTLINE_BUILD_REVISION=${REVISION} \
    SORTLINE_AMQP_URL=""
# A fixed uid/gid so Kubernetes securityContext (runAsUser 10001) and file ownership agree.
RUN groupadd --system --gid 10001 sortline \
    && useradd --system --uid 10001 --gid sortline --no-create-home --shell /usr/sbin/nologin sortline
WORKDIR /opt/sortline
# The contract package is shared by every process.
COPY pyproject.toml README.md constraints.txt ./
COPY sortline ./sortline

FROM base AS camera-agent
COPY camera_agent ./camera_agent
# Non-editable install: the code lives in site-packages, the source copy is not needed at run time.
# pyproject declares every command; this image can run only the camera agent.
# Items mode's tracker (`trackers`) is installed without its declared dependencies: they name the GUI
# build of OpenCV, which needs libGL; the headless build the camera extra installs serves it.
RUN pip install -c constraints.txt ".[camera,items]" && pip install -c constraints.txt --no-deps trackers \
    && rm -rf /opt/sortline/build \
    && cd /usr/local/bin && rm -f classifier-worker ejector-bridge trainer sortline-demo sortline
USER 10001:10001
EXPOSE 9101
ENV SORTLINE_METRICS_PORT=9101
# Ready = the source gives frames and the broker takes them (sortline.health; the image has no curl).
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD python -m sortline.health "http://127.0.0.1:${SORTLINE_METRICS_PORT}/readyz"
# --source is required and site-specific: compose and Kubernetes pass it.
CMD ["camera-agent"]

FROM base AS worker
COPY sortline_runtime ./sortline_runtime
COPY classifier_worker ./classifier_worker
RUN pip install -c constraints.txt ".[worker]" && rm -rf /opt/sortline/build \
    && cd /usr/local/bin && rm -f camera-agent ejector-bridge trainer sortline-demo sortline
USER 10001:10001
EXPOSE 9102
# The model is not baked in: it is mounted here (compose volume, Kubernetes volume), so a promoted
# model does not need a new image. Without a model there the worker exits 2 and says where it looked.
ENV SORTLINE_METRICS_PORT=9102 SORTLINE_MODEL=/models/default
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD python -m sortline.health "http://127.0.0.1:${SORTLINE_METRICS_PORT}/readyz"
CMD ["classifier-worker"]

# GPU worker: build with a CUDA runtime base, e.g.
#   docker build --target worker-gpu --build-arg PYTHON_IMAGE=<CUDA 13 runtime image with Python 3.11> .
# onnxruntime-gpu replaces onnxruntime (same module, CUDA execution provider); torch + torchvision
# decode each batch's JPEGs with nvJPEG on the GPU (--decode auto picks that on a GPU).
FROM base AS worker-gpu
COPY sortline_runtime ./sortline_runtime
COPY classifier_worker ./classifier_worker
RUN pip install -c constraints.txt ".[gpu]" && pip uninstall --yes onnxruntime \
    && pip install -c constraints.txt "onnxruntime-gpu>=1.18" && rm -rf /opt/sortline/build \
    && cd /usr/local/bin && rm -f camera-agent ejector-bridge trainer sortline-demo sortline
USER 10001:10001
EXPOSE 9102
ENV SORTLINE_METRICS_PORT=9102 SORTLINE_MODEL=/models/default SORTLINE_DEVICE=cuda
HEALTHCHECK --interval=10s --timeout=5s --start-period=120s --retries=3 \
    CMD python -m sortline.health "http://127.0.0.1:${SORTLINE_METRICS_PORT}/readyz"
CMD ["classifier-worker"]

# Trainer (train, evaluate, variants, promote), for the Kubernetes Jobs: no metrics port, so no
# HEALTHCHECK. HOME is the scratch volume: the root file system is read-only there.
FROM base AS trainer
COPY sortline_runtime ./sortline_runtime
COPY trainer ./trainer
RUN pip install -c constraints.txt ".[trainer]" && rm -rf /opt/sortline/build \
    && cd /usr/local/bin && rm -f camera-agent classifier-worker ejector-bridge sortline-demo sortline
USER 10001:10001
ENV HOME=/tmp MPLCONFIGDIR=/tmp/matplotlib
CMD ["trainer"]

# Ejector bridge: a line's decisions to valve pulses on its PLC (Modbus/TCP). Runs beside the PLC.
FROM base AS ejector-bridge
COPY ejector_bridge ./ejector_bridge
RUN pip install -c constraints.txt ".[ejector]" && rm -rf /opt/sortline/build \
    && cd /usr/local/bin && rm -f camera-agent classifier-worker trainer sortline-demo sortline
USER 10001:10001
EXPOSE 9103
ENV SORTLINE_METRICS_PORT=9103
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD python -m sortline.health "http://127.0.0.1:${SORTLINE_METRICS_PORT}/readyz"
CMD ["ejector-bridge"]
