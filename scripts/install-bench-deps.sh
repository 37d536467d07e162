#!/usr/bin/env bash
# What the benchmarks compare against: PyTorch CPU (Debian's python3-torch) for the LoRA step,
# llama2.c's run.c (built from bench/peers with gcc), ipykernel and tslab for the kernel.
set -euo pipefail
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
bash "$(dirname "$0")/install-test-deps.sh"
$SUDO apt-get install -y --no-install-recommends python3-torch python3-numpy
