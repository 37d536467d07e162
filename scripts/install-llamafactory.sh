#!/usr/bin/env bash
# Install LLaMA-Factory from a checkout into a Python venv, CPU-only, from whatever this machine's pip finds.
#
#   scripts/install-llamafactory.sh CHECKOUT [VENV]      (VENV defaults to ./.venv-llamafactory)
#
# Then put VENV/bin on PATH (or set KTU_LLAMAFACTORY_CLI=VENV/bin/llamafactory-cli) and
# test/engine-llamafactory-real.test.ts runs instead of skipping.
#
# What this works around, and why (checked on LLaMA-Factory 0.9.6.dev0, commit ff6d4d1, with an offline pip
# index that has torch 2.13.0+cpu, transformers 5.17, peft 0.21, but no torchvision/torchaudio/gradio/tyro/
# fire/modelscope/hf-transfer wheels):
#  - LLaMA-Factory is installed with --no-deps: its pins (transformers<=5.8, peft<=0.18.1, trl<=0.24, ...) are
#    older than what such an index has. Its own start-up check then refuses to run unless DISABLE_VERSION_CHECK=1
#    is set in the environment (export it, or pass it in `env` to launchLlamaFactory); ktu does not set it for you.
#  - trl 1.x dropped AutoModelForCausalLMWithValueHead and the PPO/KTO classes that LLaMA-Factory imports at
#    start-up; where trl<=0.24 is not installable, a small trl stand-in is written instead (SFT, which US-Tuning
#    uses, pre-training and export work; DPO/KTO/PPO/RM stages do not).
#  - torchaudio is imported at module level by llamafactory/data/mm_plugin.py even for text-only training; where
#    pip cannot install it, a stub package named torchaudio is written into the venv (importable, raises on use).
#  - omegaconf needs antlr4-python3-runtime; where pip cannot install it, a small shim package covering the
#    OmegaConf calls of llamafactory/hparams/parser.py (load, create, from_cli, merge, to_container) is written.
#  - gradio (web UI), tyro, modelscope, hf-transfer, torchvision are optional for `llamafactory-cli train` and
#    `export` on text models; they are tried, and skipped when pip cannot find them.
# Set PIP_INDEX_URL / PIP_EXTRA_INDEX_URL for an offline index, e.g.
#   PIP_INDEX_URL=file:///opt/pypi/simple PIP_EXTRA_INDEX_URL=file:///opt/pypi-more/simple
set -euo pipefail
CHECKOUT=${1:?usage: scripts/install-llamafactory.sh CHECKOUT [VENV]}
VENV=${2:-.venv-llamafactory}
PY=${PYTHON:-python3}
TORCH=${KTU_TORCH_SPEC:-torch==2.13.0+cpu}
[ -f "$CHECKOUT/pyproject.toml" ] || { echo "install-llamafactory: $CHECKOUT has no pyproject.toml (not a LLaMA-Factory checkout)" >&2; exit 2; }
"$PY" -m venv "$VENV"
PIP="$VENV/bin/pip"
"$PIP" install -q --upgrade pip >/dev/null 2>&1 || true
echo "install-llamafactory: torch ($TORCH)"
"$PIP" install -q "$TORCH" || "$PIP" install -q --index-url https://download.pytorch.org/whl/cpu "$TORCH"
echo "install-llamafactory: core packages"
"$PIP" install -q transformers peft accelerate datasets trl safetensors tokenizers sentencepiece tiktoken \
  einops numpy pandas scipy matplotlib packaging protobuf pyyaml pydantic uvicorn fastapi sse-starlette av torchdata
TORCH_VERSION=$("$VENV/bin/python" -c 'import torch; print(torch.__version__)')
for opt in omegaconf torchaudio torchvision fire tyro modelscope hf-transfer; do
  # Pin torch so an optional package cannot swap it; drop one that installs but does not import
  # (a torchvision built for another torch breaks `import transformers`).
  if "$PIP" install -q "$opt" "torch==$TORCH_VERSION" >/dev/null 2>&1; then
    if "$VENV/bin/python" -c "import ${opt//-/_}" >/dev/null 2>&1; then echo "install-llamafactory: optional $opt installed"
    else "$PIP" uninstall -q -y "$opt" >/dev/null 2>&1 || true; echo "install-llamafactory: optional $opt installed but does not import with torch $TORCH_VERSION, removed"; fi
  else echo "install-llamafactory: optional $opt not available from pip, skipped"; fi
done
SITE=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
if ! "$VENV/bin/python" -c 'import torchaudio' >/dev/null 2>&1; then
  echo "install-llamafactory: writing a torchaudio stub (text-only training never calls it)"
  mkdir -p "$SITE/torchaudio"
  cat > "$SITE/torchaudio/__init__.py" <<'PYEOF'
"""Stub written by know-the-unknown's scripts/install-llamafactory.sh: torchaudio was not installable here.
LLaMA-Factory imports it at module level; text-only training never calls it."""
__version__ = "0.0.0+stub"
def __getattr__(name):
    raise ImportError(f"torchaudio is a stub in this venv (torchaudio.{name} unavailable)")
PYEOF
fi
if ! "$VENV/bin/python" -c 'import omegaconf' >/dev/null 2>&1; then
  echo "install-llamafactory: writing an omegaconf shim (its antlr4-python3-runtime dependency is not installable here)"
  mkdir -p "$SITE/omegaconf"
  cat > "$SITE/omegaconf/__init__.py" <<'PYEOF'
"""Shim written by know-the-unknown's scripts/install-llamafactory.sh: omegaconf needs antlr4-python3-runtime,
which pip could not install here. It covers what LLaMA-Factory's parser uses: load, create, from_cli, merge,
to_container on plain YAML (no ${...} interpolation)."""
import copy
import yaml
__version__ = "0.0.0+ktu-shim"
class OmegaConf:
    @staticmethod
    def load(path):
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f) or {}
    @staticmethod
    def create(obj=None):
        return copy.deepcopy(obj) if obj is not None else {}
    @staticmethod
    def from_cli(args):
        out = {}
        for arg in args:
            key, _, value = arg.partition("=")
            node = out
            parts = key.split(".")
            for part in parts[:-1]:
                node = node.setdefault(part, {})
            node[parts[-1]] = yaml.safe_load(value) if value != "" else None
        return out
    @staticmethod
    def merge(*configs):
        def deep(a, b):
            for k, v in b.items():
                if isinstance(v, dict) and isinstance(a.get(k), dict):
                    deep(a[k], v)
                else:
                    a[k] = copy.deepcopy(v)
            return a
        out = {}
        for c in configs:
            deep(out, c or {})
        return out
    @staticmethod
    def to_container(cfg, resolve=True):
        return cfg
PYEOF
fi
if ! "$VENV/bin/python" -c 'from trl import AutoModelForCausalLMWithValueHead' >/dev/null 2>&1; then
  "$PIP" install -q "trl>=0.18,<=0.24" >/dev/null 2>&1 || true
fi
if ! "$VENV/bin/python" -c 'from trl import AutoModelForCausalLMWithValueHead' >/dev/null 2>&1; then
  echo "install-llamafactory: trl $("$VENV/bin/python" -c 'import trl; print(trl.__version__)' 2>/dev/null || echo '(none)') lacks what LLaMA-Factory imports at start-up and trl<=0.24 is not installable: writing a trl stand-in (SFT, pre-training and export work; DPO, KTO, PPO and reward-model stages do not)"
  "$PIP" uninstall -q -y trl >/dev/null 2>&1 || true
  mkdir -p "$SITE/trl/models" "$SITE/trl/trainer"
  cat > "$SITE/trl/__init__.py" <<'PYEOF'
"""Stand-in written by know-the-unknown's scripts/install-llamafactory.sh: LLaMA-Factory imports these trl names at
start-up, and trl<=0.24 (which has them) was not installable. SFT never uses them; the DPO/KTO/PPO/RM stages fail."""
__version__ = "0.0.0+ktu-stand-in"


class _Unavailable:
    def __init__(self, *args, **kwargs):
        raise ImportError(f"{type(self).__name__} needs trl<=0.24; this venv has a stand-in (SFT only)")

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        raise ImportError(f"{cls.__name__} needs trl<=0.24; this venv has a stand-in (SFT only)")


class AutoModelForCausalLMWithValueHead(_Unavailable): pass
class PreTrainedModelWrapper(_Unavailable): pass
class DPOTrainer(_Unavailable): pass
class KTOTrainer(_Unavailable): pass
class PPOTrainer(_Unavailable): pass
class PPOConfig(_Unavailable): pass
PYEOF
  cat > "$SITE/trl/models/__init__.py" <<'PYEOF'
from .. import AutoModelForCausalLMWithValueHead, PreTrainedModelWrapper  # noqa: F401
PYEOF
  cat > "$SITE/trl/models/utils.py" <<'PYEOF'
def _unavailable(*args, **kwargs):
    raise ImportError("needs trl<=0.24; this venv has a stand-in (SFT only)")
prepare_deepspeed = prepare_fsdp = unwrap_model_for_generation = _unavailable
PYEOF
  cat > "$SITE/trl/trainer/__init__.py" <<'PYEOF'
def disable_dropout_in_model(model):
    import torch
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0
PYEOF
fi
echo "install-llamafactory: LLaMA-Factory from $CHECKOUT (--no-deps)"
"$PIP" install -q --no-deps "$CHECKOUT"
DISABLE_VERSION_CHECK=1 "$VENV/bin/llamafactory-cli" version >/dev/null 2>&1 || DISABLE_VERSION_CHECK=1 "$VENV/bin/python" -c 'import llamafactory' 
"$VENV/bin/python" - <<'PYEOF'
import importlib.metadata as m
import importlib
for p in ["llamafactory", "torch", "transformers", "peft", "accelerate", "datasets", "trl", "omegaconf", "torchaudio"]:
    try: print(f"  {p} {m.version(p)}")
    except Exception:
        try: print(f"  {p} {importlib.import_module(p).__version__} (written by this script)")
        except Exception: print(f"  {p} missing")
PYEOF
echo "install-llamafactory: done; export KTU_LLAMAFACTORY_CLI=$(cd "$VENV" && pwd)/bin/llamafactory-cli DISABLE_VERSION_CHECK=1"
