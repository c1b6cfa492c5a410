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
not parameters (`embeddings.position_ids`) are ignored. bfloat16 tensors, which
NumPy cannot hold, are widened to float32 exactly.

Everything is checked before anything is copied, so a bad file never leaves a
half-loaded model: the file must parse (a truncated or corrupted header is an
error), every weight must be floating point and finite (overwritten bytes show
up as NaN or inf), config.json must agree with the shapes of the weights
(layers, hidden size, vocabulary, FFN width, table sizes; see
`config_mismatches`), and every name and shape must fit the model.

Files on disk: safetensors for arrays, JSON for everything else. No pickle, ever: a pickle
file can run arbitrary code when loaded, so minibert never writes or reads one. Every write is
atomic (minibert/files.py): the file is written under a temporary name, flushed to the disk
and renamed into place, so a crash or a kill leaves either the old version or the new one,
never half a file. Every file gets the permissions of any new file (0644 under the usual
umask 022): safetensors writes its own temporary file, which is private (0600), so the
rename gives it the usual mode back.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy

from minibert import backend, files
from minibert.errors import MinibertError
from minibert.files import atomic_path, new_file_mode  # noqa: F401  (new_file_mode: its old home, for callers)

# -- arrays and JSON, written atomically ----------------------------------------------------------

class CheckpointError(MinibertError, RuntimeError):
    """A weights or checkpoint file that is missing, truncated, corrupted or does not fit."""


def save_arrays(path, arrays: dict, metadata: dict | None = None) -> Path:
    """Write {name: array} (host or device arrays) to a .safetensors file, atomically (minibert/files.py)."""
    from safetensors.numpy import save_file

    path = Path(path)
    host = {k: numpy.ascontiguousarray(backend.to_host(v)) for k, v in arrays.items()}
    with atomic_path(path) as tmp:    # safetensors' own file is private (0600): atomic_path gives the usual mode
        save_file(host, str(tmp), metadata={k: str(v) for k, v in (metadata or {}).items()})
    return path


def load_arrays(path) -> dict:
    """Read a .safetensors file into {name: host numpy array}, with a clear error if it is broken."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no weights file at {path}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        size = path.stat().st_size
        raise CheckpointError(f"{path} is not a readable safetensors file ({size} bytes; "
                              f"truncated or corrupted?): {err}") from None


def write_json(path, obj) -> Path:
    """`obj` as indented JSON with sorted keys, atomically (minibert/files.py)."""
    return files.write_json(path, obj)


def read_json(path):
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no file at {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path} is not valid JSON: {err}") from None


_fsync_dir = files.fsync_folder      # its old name here, which train/checkpoint.py imports


def assign_params(params: dict, arrays: dict, where: str = "checkpoint", allow_missing=()) -> None:
    """Copy host arrays into a model's parameter arrays in place (on the model's device and dtype).

    Everything is checked before anything is written, so a bad file leaves the
    model untouched: names missing from the file, names the model does not have,
    and shape mismatches (naming the key and both shapes) all raise CheckpointError.
    """
    missing = [k for k in params if k not in arrays and k not in allow_missing]
    unexpected = [k for k in arrays if k not in params]
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} weights: {', '.join(missing[:6])}{' ...' if len(missing) > 6 else ''}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected weights: {', '.join(unexpected[:6])}"
                        f"{' ...' if len(unexpected) > 6 else ''}")
    for k, v in arrays.items():
        if k in params and tuple(v.shape) != tuple(params[k].shape):
            problems.append(f"{k} has shape {tuple(v.shape)} in the {where} but {tuple(params[k].shape)} in the model")
    if problems:
        raise CheckpointError(f"{where} does not fit the model: " + "; ".join(problems))
    for k, v in arrays.items():
        target = params[k]
        target[...] = backend.get_xp(target).asarray(v, dtype=target.dtype)


# -- Hugging Face folders ---------------------------------------------------------------------------

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
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise CheckpointError(f"{modules} should hold a list of modules (sentence-transformers' layout)")
        for entry in entries:
            if str(entry.get("type", "")).endswith("models.Transformer"):
                path = path / entry.get("path", "")
                break
    if not (path / CONFIG_NAME).is_file():
        raise CheckpointError(f"{path} has no {CONFIG_NAME}")
    if not (path / WEIGHTS_NAME).is_file():
        found = sorted(p.name for p in path.glob("*.bin")) + sorted(p.name for p in path.glob("*.h5"))
        hint = (f" (it has {', '.join(found)}: minibert reads only safetensors, never pickled .bin files; "
                f"convert with transformers' save_pretrained(..., safe_serialization=True))") if found else ""
        if (path / (WEIGHTS_NAME + ".index.json")).is_file():
            hint = (" (its weights are sharded into several files, model.safetensors.index.json; minibert reads "
                    "one file: save with transformers' save_pretrained(..., max_shard_size=\"100GB\"))")
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

    folder, encoder, rest = read_bert_checkpoint(folder, model.config)
    pooler = [k for k in model.params if k.startswith("pooler.")]
    missing_pooler = [k for k in pooler if k not in encoder]
    assign_params(model.params, encoder, where=str(folder / WEIGHTS_NAME), allow_missing=missing_pooler)
    if missing_pooler:
        warnings.warn(f"{folder} has no pooler weights; the pooler keeps the values it had "
                      f"(zeros after from_pretrained)", stacklevel=2)
    return rest


def read_bert_checkpoint(folder, config) -> tuple[Path, dict, dict]:
    """(folder, encoder weights under BertModel's bare names, every other weight) of a checkpoint
    folder, checked before anything is loaded: the file parses, the encoder's weights are floating
    point and finite, and `config` agrees with their shapes (see config_mismatches)."""
    folder = find_model_folder(folder)
    arrays = normalise_names(read_weights(folder / WEIGHTS_NAME))
    encoder, rest = split_prefix(arrays)
    check_weights(encoder, folder / WEIGHTS_NAME)
    mismatches = config_mismatches(config, encoder)
    if mismatches:
        raise CheckpointError(f"{folder / CONFIG_NAME} does not match the weights in {folder / WEIGHTS_NAME}: "
                              + "; ".join(mismatches))
    return folder, encoder, rest


def read_weights(path) -> dict:
    """{name: host array} of a safetensors file. bfloat16 tensors (which NumPy cannot hold) are
    widened to float32 exactly: a bfloat16 is the top 16 bits of a float32."""
    try:
        return load_arrays(path)
    except TypeError as err:                      # safetensors.numpy: "data type 'bfloat16' not understood"
        if "bfloat16" not in str(err):
            raise CheckpointError(f"{path}: {err}") from None
    return _read_with_bfloat16(Path(path))


def _read_with_bfloat16(path: Path) -> dict:
    """The safetensors layout read by hand: 8 bytes (little-endian header length), a JSON
    header {name: {dtype, shape, data_offsets}}, then the raw bytes of every tensor."""
    import numpy

    dtypes = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
              "I8": "i1", "U8": "u1", "BOOL": "?"}
    raw = path.read_bytes()
    try:
        n = int.from_bytes(raw[:8], "little")
        header = json.loads(raw[8:8 + n])
    except (ValueError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path} is not a readable safetensors file: {err}") from None
    data = memoryview(raw)[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        if end > len(data):
            raise CheckpointError(f"{path} is truncated: {name} needs bytes up to {end}, the file has {len(data)}")
        chunk = data[start:end]
        if info["dtype"] == "BF16":
            bits = numpy.frombuffer(chunk, dtype="<u2").astype(numpy.uint32) << 16
            array = bits.view(numpy.float32)
        elif info["dtype"] in dtypes:
            array = numpy.frombuffer(chunk, dtype=dtypes[info["dtype"]]).copy()
        else:
            raise CheckpointError(f"{path}: tensor {name} has dtype {info['dtype']}, which minibert cannot read")
        out[name] = array.reshape(info["shape"])
    return out


def config_mismatches(config, arrays: dict) -> list[str]:
    """What config.json says against what the weights' shapes say, one sentence per field that differs.

    Read off the weights: vocab_size, hidden_size and max_position_embeddings and
    type_vocab_size (the embedding tables), num_hidden_layers (the encoder.layer.N
    indices), intermediate_size (layer 0's FFN). num_attention_heads cannot be
    read off any shape (the heads are slices of one H x H matrix): a wrong head
    count loads without error and computes something else.
    """
    import re

    found = {}
    tables = (("embeddings.word_embeddings.weight", "vocab_size"),
              ("embeddings.position_embeddings.weight", "max_position_embeddings"),
              ("embeddings.token_type_embeddings.weight", "type_vocab_size"))
    for key, field in tables:
        if key in arrays and arrays[key].ndim == 2:
            found[field] = (arrays[key].shape[0], key)
            found.setdefault("hidden_size", (arrays[key].shape[1], key))
    layers = {int(m.group(1)) for k in arrays if (m := re.match(r"encoder\.layer\.(\d+)\.", k))}
    if layers:
        found["num_hidden_layers"] = (max(layers) + 1, f"encoder.layer.0 .. encoder.layer.{max(layers)}")
    key = "encoder.layer.0.intermediate.dense.weight"
    if key in arrays and arrays[key].ndim == 2:
        found["intermediate_size"] = (arrays[key].shape[0], key)
    problems = []
    for field, (value, where) in found.items():
        if getattr(config, field) != value:
            problems.append(f"config says {field}={getattr(config, field)} but the weights have {value} ({where})")
    return problems


def check_weights(arrays: dict, where) -> None:
    """Every weight is floating point and finite (a file whose bytes were overwritten usually
    holds NaN or inf somewhere; safetensors itself has no checksum to catch it). `where`: the
    file (or folder) the message names, with the first bad weight."""
    for k, v in arrays.items():
        if v.dtype.kind != "f":
            raise CheckpointError(f"{where}: weight {k} has dtype {v.dtype}, expected floating point")
        if not numpy.isfinite(v).all():
            bad = int(v.size - numpy.isfinite(v).sum())
            raise CheckpointError(f"{where}: weight {k} holds {bad} NaN or infinite values "
                                  f"(corrupted file, or a run that diverged?); nothing was loaded")


def check_vocab_size(n_tokens: int, config, vocab_file) -> None:
    """The vocab.txt beside a model has exactly config.vocab_size tokens (one per row of the embedding table).

    Shorter, and the model predicts ids no token has (an IndexError at the first such guess); longer, and
    the tokenizer makes ids past the table. Either way the two files do not belong together.
    """
    if n_tokens != config.vocab_size:
        raise CheckpointError(f"{vocab_file} has {n_tokens} tokens but the model's config.json says "
                              f"vocab_size={config.vocab_size}: they do not belong together (use the vocab.txt "
                              f"the model was trained with)")


def save_bert_weights(model, folder, extra: dict | None = None, architectures=("BertModel",)) -> Path:
    """Write config.json and model.safetensors (transformers' names and layout) into `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = model.config.to_dict()
    config["architectures"] = list(architectures)
    write_json(folder / CONFIG_NAME, config)
    arrays = dict(model.params)
    arrays.update(extra or {})
    # transformers refuses safetensors files without format metadata
    save_arrays(folder / WEIGHTS_NAME, arrays, metadata={"format": "pt"})
    return folder
