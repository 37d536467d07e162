#!/usr/bin/env bash
# What the benchmarks compare against: PyTorch 2.x CPU in a venv at bench/.venv (the peer of every
# training and scoring bench), llama2.c's run.c (built from bench/peers with gcc), ipykernel and tslab
# for the kernel. PyTorch comes from the machine's pip (offline mirrors where the machine has them);
# where no 2.x wheel installs, Debian's python3-torch (1.13) is installed instead and every bench
# flags its peer as that fallback.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
bash "$here/scripts/install-test-deps.sh"

venv="$here/bench/.venv"
# The machine's own package mirror, when it has one (pip also reads PIP_FIND_LINKS from the environment).
if [ -z "${PIP_INDEX_URL:-}" ] && [ -d /opt/pypi/simple ]; then export PIP_INDEX_URL=file:///opt/pypi/simple; fi
if ! python3 -m venv "$venv" 2>/dev/null; then
  $SUDO apt-get install -y --no-install-recommends python3-venv
  python3 -m venv "$venv"
fi
if "$venv/bin/pip" install --quiet "torch>=2,<3" numpy && "$venv/bin/python" -c "import torch, numpy; assert torch.__version__.startswith('2.')"; then
  echo "bench peer: PyTorch $("$venv/bin/python" -c 'import torch; print(torch.__version__)') in $venv"
else
  echo "bench peer: no PyTorch 2.x wheel installed; falling back to Debian's python3-torch (flagged in every bench's output)" >&2
  $SUDO apt-get install -y --no-install-recommends python3-torch python3-numpy
fi
