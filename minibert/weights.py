"""Real checkpoints in, minibert's out: Hugging Face folders (config.json + model.safetensors).

minibert's parameter names *are* Hugging Face's BertModel state-dict names, so
loading is mostly finding the file and checking it. Real checkpoints come in a
few layouts, all accepted here:

    folder/config.json + folder/model.safetensors        transformers' save_pretrained
      keys "embeddings.*", "encoder.*", "pooler.*"       a bare BertModel
      keys "bert.embeddings.*", ..., "cls.*"             a model with heads (BertForPreTraining, ...)
    folder/modules.json + the Transformer module's path  a sentence-transformers folder
      (path "" = the folder itself, or a sub-folder such as 0_Transformer/)

Old TensorFlow-converted names "LayerNorm.gamma" / "LayerNorm.beta" are read as
"LayerNorm.weight" / "LayerNorm.bias", as transformers does. Buffers that are
not parameters (`embeddings.position_ids`) are ignored. Everything is checked
before anything is copied, so a bad file never leaves a half-loaded model.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

from minibert.checkpoint import CheckpointError, load_arrays, save_arrays

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
NOT_PARAMETERS = ("embeddings.position_ids",)


def find_model_folder(path) -> Path:
    """The folder holding config.json and model.safetensors (follows a sentence-transformers modules.json)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"no model folder at {path}")
    if path.is_file():
        path = path.parent
    modules = path / "modules.json"
    if modules.is_file():
        try:
            entries = json.loads(modules.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise CheckpointError(f"{modules} is not valid JSON: {err}") from None
        for entry in entries:
            if entry.get("type", "").endswith("models.Transformer"):
                path = path / entry.get("path", "")
                break
    if not (path / CONFIG_NAME).is_file():
        raise CheckpointError(f"{path} has no {CONFIG_NAME}")
    if not (path / WEIGHTS_NAME).is_file():
        found = sorted(p.name for p in path.glob("*.bin")) + sorted(p.name for p in path.glob("*.h5"))
        hint = (f" (it has {', '.join(found)}: minibert reads only safetensors, never pickled .bin files; "
                f"convert with transformers' save_pretrained(..., safe_serialization=True))") if found else ""
        raise CheckpointError(f"{path} has no {WEIGHTS_NAME}{hint}")
    return path


def normalise_names(arrays: dict) -> dict:
    """Map a checkpoint's keys to minibert's: drop buffers, gamma/beta -> weight/bias."""
    out = {}
    for key, value in arrays.items():
        if key.endswith(NOT_PARAMETERS) or key.endswith("position_ids"):
            continue
        key = key.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")
        out[key] = value
    return out


def split_prefix(arrays: dict, prefix: str = "bert.") -> tuple[dict, dict]:
    """(encoder weights without `prefix`, everything else such as heads). Bare keys pass as they are."""
    if any(k.startswith(prefix) for k in arrays):
        encoder = {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
        rest = {k: v for k, v in arrays.items() if not k.startswith(prefix)}
        return encoder, rest
    heads = ("cls.", "classifier.", "qa_outputs.")
    return ({k: v for k, v in arrays.items() if not k.startswith(heads)},
            {k: v for k, v in arrays.items() if k.startswith(heads)})


def load_bert_weights(model, folder) -> dict:
    """Load the encoder weights of a checkpoint folder into `model` (a BertModel), in place.

    Returns the remaining (head) weights, host arrays keyed by their names, for a
    caller with heads. A missing pooler is allowed (some checkpoints have none;
    it keeps its initialisation, with a warning); any other missing weight, a
    weight the model does not have, or a wrong shape raises CheckpointError.
    """
    from minibert.checkpoint import assign_params

    folder = find_model_folder(folder)
    arrays = normalise_names(load_arrays(folder / WEIGHTS_NAME))
    encoder, rest = split_prefix(arrays)
    _check_dtypes(encoder, folder)
    pooler = [k for k in model.params if k.startswith("pooler.")]
    missing_pooler = [k for k in pooler if k not in encoder]
    assign_params(model.params, encoder, where=str(folder / WEIGHTS_NAME), allow_missing=missing_pooler)
    if missing_pooler:
        warnings.warn(f"{folder} has no pooler weights; the pooler keeps its random initialisation", stacklevel=2)
    return rest


def _check_dtypes(arrays: dict, folder) -> None:
    for k, v in arrays.items():
        if v.dtype.kind != "f":
            raise CheckpointError(f"{folder}: weight {k} has dtype {v.dtype}, expected floating point")


def save_bert_weights(model, folder, extra: dict | None = None, architectures=("BertModel",)) -> Path:
    """Write config.json and model.safetensors (transformers' names and layout) into `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = model.config.to_dict()
    config["architectures"] = list(architectures)
    from minibert.checkpoint import write_json
    write_json(folder / CONFIG_NAME, config)
    arrays = dict(model.params)
    arrays.update(extra or {})
    # transformers refuses safetensors files without format metadata
    save_arrays(folder / WEIGHTS_NAME, arrays, metadata={"format": "pt"})
    return folder
