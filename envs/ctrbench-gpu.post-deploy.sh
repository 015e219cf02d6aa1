#!/usr/bin/env bash
# GENERATED from envs/ctrbench.lock by `python3 envs/lock.py sync`: edit the lock, not this file.
# Snakemake runs it once, inside the new env, after creating envs/ctrbench-gpu.yaml's env: it compiles the
# CUDA extensions against the env's torch (pip --no-build-isolation; *_FORCE_BUILD: never a prebuilt wheel).
# Needs nvcc of CUDA 13.0 (CUDA_HOME, or nvcc on PATH); TORCH_CUDA_ARCH_LIST and MAX_JOBS are honoured.
set -euo pipefail
export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-8.0;9.0}"
export FLASH_ATTN_CUDA_ARCHS="${FLASH_ATTN_CUDA_ARCHS:-80;90}"
export MAX_JOBS="${MAX_JOBS:-4}"
CAUSAL_CONV1D_FORCE_BUILD=TRUE MAMBA_FORCE_BUILD=TRUE FLASH_ATTENTION_FORCE_BUILD=TRUE python -m pip install --no-cache-dir --no-deps --no-build-isolation causal-conv1d==1.5.3.post1 mamba-ssm==2.2.6.post3 flash-attn==2.8.3.post2
