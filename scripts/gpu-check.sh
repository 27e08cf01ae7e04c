#!/usr/bin/env bash
# Runs kto-lab's CUDA path on a machine with an NVIDIA GPU and the CUDA toolkit (nvcc, cuda.h):
# the test suite and lab 3's loop built with `--features cuda`, then the step benchmark.
# Usage: bash scripts/gpu-check.sh   (prints everything it runs; exits non-zero on the first failure)
set -euxo pipefail
cd "$(dirname "$0")/.."
nvidia-smi
nvcc --version
cargo test --release -p kto-lab --features cuda
cargo run --release --features cuda -- train --device cuda --out out/gpu-lab3 --quiet
cargo run --release --features cuda -- bench --no-torch
