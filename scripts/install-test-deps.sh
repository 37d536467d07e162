#!/usr/bin/env bash
# Installs what `npm test` needs on a fresh Debian machine: the real Jupyter clients that drive the
# kernel in tests, Chromium for plot screenshots, a C compiler for llama2.c parity, then npm ci; and,
# where the machine's pip can install it, JupyterLab with plotly's jupyterlab-plotly extension in
# .venv-jupyterlab for the browser test (test/kernel-jupyterlab.test.ts skips, saying so, without it).
set -euo pipefail
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends \
  jupyter-client jupyter-nbconvert jupyter-notebook python3-nbclient python3-jupyter-client \
  python3-ipykernel python3-jupyter-kernel-test python3-nbformat python3-venv \
  chromium fonts-dejavu-core gcc make
npm ci
# The machine's own package mirror, when it has one: without it pip first asks PyPI for every package,
# and where PyPI is unreachable each ask is retried (minutes of waiting for nothing).
if [ -z "${PIP_INDEX_URL:-}" ] && [ -d /opt/pypi/simple ]; then export PIP_INDEX_URL=file:///opt/pypi/simple; fi
if [ ! -x .venv-jupyterlab/bin/jupyter ]; then
  if /usr/bin/python3 -m venv .venv-jupyterlab \
    && .venv-jupyterlab/bin/pip install --quiet --retries 1 jupyterlab plotly; then
    echo "JupyterLab for the browser test: $(.venv-jupyterlab/bin/jupyter lab --version)"
  else
    rm -rf .venv-jupyterlab
    echo "pip could not install jupyterlab: the JupyterLab browser test will be skipped" >&2
  fi
fi
