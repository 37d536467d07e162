#!/bin/sh
# Executes notebooks with our kernel and saves their outputs in place (so they read well on GitHub).
# Usage: scripts/execute-notebooks.sh [notebooks/NAME.ipynb ...]   (default: all of notebooks/)
# The kernelspec goes into a temporary JUPYTER_PATH, so nothing is installed for the user.
set -eu
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
node bin/ktu.js kernel install --prefix "$tmp" > /dev/null
export JUPYTER_PATH="$tmp/share/jupyter"
[ $# -gt 0 ] || set -- notebooks/*.ipynb
for nb in "$@"; do
  start=$(date +%s)
  /usr/bin/python3 -m nbconvert --to notebook --execute --inplace \
    --ExecutePreprocessor.kernel_name=know-the-unknown --ExecutePreprocessor.timeout=3600 "$nb"
  echo "$nb: $(( $(date +%s) - start )) s"
done
