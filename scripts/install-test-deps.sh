#!/usr/bin/env bash
# Installs what `npm test` needs on a fresh Debian machine: the real Jupyter clients that drive the
# kernel in tests, Chromium for plot screenshots, a C compiler for llama2.c parity, then npm ci.
set -euo pipefail
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends \
  jupyter-client jupyter-nbconvert jupyter-notebook python3-nbclient python3-jupyter-client \
  python3-ipykernel python3-jupyter-kernel-test python3-nbformat \
  chromium fonts-dejavu-core gcc make
npm ci
