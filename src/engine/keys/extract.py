"""Regenerates src/engine/llamafactory-keys.json from a LLaMA-Factory git checkout.

Usage: /usr/bin/python3 src/engine/keys/extract.py GIT_DIR [REV] > src/engine/llamafactory-keys.json

It reads the hparams dataclasses with `ast` (nothing is imported or run), follows each class's
bases inside the hparams package, and keeps the fields HfArgumentParser.parse_dict accepts
(`init=False` fields are not accepted). The fields that LLaMA-Factory's TrainingArguments inherits
from transformers' Seq2SeqTrainingArguments come from transformers-fields.json (same folder),
which was transcribed from transformers' source and names the commit it comes from.
"""
import ast
import json
import subprocess
import sys
from pathlib import Path

git_dir = sys.argv[1]
rev = sys.argv[2] if len(sys.argv) > 2 else "HEAD"
HPARAMS = "src/llamafactory/hparams"
FILES = ["model_args", "data_args", "finetuning_args", "generating_args", "training_args", "parser"]


def show(path: str) -> str:
    return subprocess.run(["git", "--git-dir", git_dir, "show", f"{rev}:{path}"], check=True, capture_output=True, text=True).stdout


def field_accepted(value: ast.expr | None) -> bool:
    if isinstance(value, ast.Call) and getattr(value.func, "id", None) == "field":
        for kw in value.keywords:
            if kw.arg == "init" and isinstance(kw.value, ast.Constant) and kw.value.value is False:
                return False
    return True


classes: dict[str, tuple[list[str], list[str]]] = {}
for name in FILES:
    tree = ast.parse(show(f"{HPARAMS}/{name}.py"))
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        bases = [b.id if isinstance(b, ast.Name) else ast.unparse(b) for b in node.bases]
        fields = [
            stmt.target.id
            for stmt in node.body
            if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and not stmt.target.id.startswith("_") and field_accepted(stmt.value)
        ]
        classes[node.name] = (bases, fields)

transformers = json.loads((Path(__file__).parent / "transformers-fields.json").read_text())


def collect(cls: str) -> list[str]:
    if cls == "BaseTrainingArguments":  # Seq2SeqTrainingArguments unless USE_MCA=1
        return transformers["TrainingArguments"] + transformers["Seq2SeqTrainingArguments"]
    bases, fields = classes[cls]
    out: list[str] = []
    for base in reversed(bases):  # dataclass field order: the rightmost base first
        out += [f for f in collect(base) if f not in out]
    return out + [f for f in fields if f not in out]


groups = {
    "ModelArguments": collect("ModelArguments"),
    "DataArguments": collect("DataArguments"),
    "TrainingArguments": collect("TrainingArguments"),
    "FinetuningArguments": collect("FinetuningArguments"),
    "GeneratingArguments": collect("GeneratingArguments"),
    "_KTransformersRuntimeArguments": collect("_KTransformersRuntimeArguments"),
}
commit = subprocess.run(["git", "--git-dir", git_dir, "rev-parse", rev], check=True, capture_output=True, text=True).stdout.strip()
version_src = show("src/llamafactory/extras/env.py")
version = next(line.split('"')[1] for line in version_src.splitlines() if line.startswith("VERSION = "))
json.dump(
    {
        "source": {
            "llamafactory": {"repo": "hiyouga/LLaMA-Factory", "commit": commit, "version": version, "files": [f"{HPARAMS}/{f}.py" for f in FILES]},
            "transformers": transformers["source"],
        },
        "commands": {
            "train": ["ModelArguments", "DataArguments", "TrainingArguments", "FinetuningArguments", "GeneratingArguments"],
            "export": ["ModelArguments", "DataArguments", "FinetuningArguments", "GeneratingArguments", "_KTransformersRuntimeArguments"],
        },
        "deprecated": transformers["deprecated"],
        "groups": groups,
    },
    sys.stdout,
    indent=1,
)
sys.stdout.write("\n")
