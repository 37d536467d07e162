"""Prints, as JSON, the YAML keys the installed LLaMA-Factory accepts for `llamafactory-cli train` and
`export`: the init fields of the dataclasses its HfArgumentParser parses (hparams/parser.py's _TRAIN_ARGS
and _INFER_ARGS), with the installed versions and how the installed transformers takes warmup.

Run with the Python of the llamafactory-cli console script (src/engine/keys.ts does that, and caches
the answer). Nothing is trained or downloaded; importing the hparams pulls in torch and transformers.
"""
import dataclasses
import importlib.metadata as metadata
import json
import os

os.environ.setdefault("DISABLE_VERSION_CHECK", "1")
import transformers  # noqa: E402
from llamafactory.hparams import parser  # noqa: E402


def fields(cls):
    return [f.name for f in dataclasses.fields(cls) if f.init]


def group(classes):
    return {cls.__name__: fields(cls) for cls in classes}


train = group(parser._TRAIN_ARGS)
export = group(parser._INFER_ARGS)
seq2seq = {f.name: f for f in dataclasses.fields(transformers.Seq2SeqTrainingArguments)}
warmup_type = seq2seq["warmup_steps"].type if "warmup_steps" in seq2seq else None
warmup_type = warmup_type if isinstance(warmup_type, str) else getattr(warmup_type, "__name__", str(warmup_type))
print(json.dumps({
    "llamafactory": metadata.version("llamafactory"),
    "transformers": transformers.__version__,
    "train": list(train),
    "export": list(export),
    "groups": {**train, **export},
    "warmup_steps_type": warmup_type,
    "warmup_ratio": "warmup_ratio" in seq2seq,
}))

# `introspect.py --update-shipped FILE` also rewrites the shipped list (src/engine/llamafactory-keys.json)
# from this installation, keeping its source notes and deprecations that still apply.
import sys  # noqa: E402

if len(sys.argv) == 3 and sys.argv[1] == "--update-shipped":
    with open(sys.argv[2], encoding="utf-8") as f:
        shipped = json.load(f)
    shipped["groups"] = {**train, **export}
    shipped["commands"] = {"train": list(train), "export": list(export)}
    shipped["warmup"] = "warmup_ratio" if "warmup_ratio" in seq2seq and "int" in str(warmup_type) else "warmup_steps"
    accepted = {key for keys in shipped["groups"].values() for key in keys}
    shipped["deprecated"] = {k: v for k, v in shipped.get("deprecated", {}).items() if k in accepted}
    shipped["source"]["transformers"] = {
        "repo": "huggingface/transformers",
        "version": transformers.__version__,
        "files": {"installed": "read from the installed package by src/engine/keys/introspect.py --update-shipped"},
    }
    shipped["source"]["llamafactory"]["installed_version"] = metadata.version("llamafactory")
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        json.dump(shipped, f, indent=2)
        f.write("\n")
