"""BertConfig: the sizes of a BERT, with Hugging Face's config.json field names.

The names are exactly those of `transformers.BertConfig`, so a config.json
written by Hugging Face loads here and one written here loads there.

Google's 24 small BERTs and the two paper sizes are presets:

    name    L   H     A   (intermediate = 4H)
    tiny    2   128   2
    mini    4   256   4
    small   4   512   8
    medium  8   512   8
    base    12  768   12   (BERT-Base, 110M parameters)
    large   24  1024  16   (BERT-Large, 340M parameters)
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

ACTIVATIONS = ("gelu", "gelu_new")  # exact erf GELU, and the tanh approximation

PRESETS = {
    "tiny": (2, 128, 2),
    "mini": (4, 256, 4),
    "small": (4, 512, 8),
    "medium": (8, 512, 8),
    "base": (12, 768, 12),
    "large": (24, 1024, 16),
}


class ConfigError(ValueError):
    """A config that cannot describe a BERT (says which field and why)."""


@dataclasses.dataclass
class BertConfig:
    vocab_size: int = 30522               # WordPiece vocabulary of the original uncased BERT
    hidden_size: int = 768                # H: width of every token vector
    num_hidden_layers: int = 12           # L: encoder layers
    num_attention_heads: int = 12         # A: heads; each has H / A dimensions
    intermediate_size: int = 3072         # FFN inner width, 4H in every released BERT
    hidden_act: str = "gelu"              # "gelu" (exact, erf) or "gelu_new" (tanh approximation)
    hidden_dropout_prob: float = 0.1      # dropout after embeddings and each sub-layer
    attention_probs_dropout_prob: float = 0.1  # dropout on the attention probabilities
    max_position_embeddings: int = 512    # longest sequence the position table covers
    type_vocab_size: int = 2              # segments A and B
    layer_norm_eps: float = 1e-12         # BERT's LayerNorm epsilon (not PyTorch's 1e-5 default)
    initializer_range: float = 0.02       # std of the normal init of weights
    pad_token_id: int = 0                 # id of [PAD]

    def __post_init__(self):
        self.validate()

    # -- checks ------------------------------------------------------------
    def validate(self) -> None:
        """Raise ConfigError naming the first field that cannot work."""
        for field in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                      "intermediate_size", "max_position_embeddings", "type_vocab_size"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"{field} must be a positive integer, got {value!r}")
        if self.hidden_size % self.num_attention_heads != 0:
            raise ConfigError(
                f"hidden_size ({self.hidden_size}) must be divisible by num_attention_heads "
                f"({self.num_attention_heads}): each head gets hidden_size / num_attention_heads dimensions"
            )
        if self.hidden_act not in ACTIVATIONS:
            raise ConfigError(f"unknown hidden_act {self.hidden_act!r}; minibert supports {list(ACTIVATIONS)}")
        for field in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            p = getattr(self, field)
            if not isinstance(p, (int, float)) or not 0.0 <= p < 1.0:
                raise ConfigError(f"{field} must be in [0, 1), got {p!r}")
        if not isinstance(self.layer_norm_eps, (int, float)) or self.layer_norm_eps <= 0:
            raise ConfigError(f"layer_norm_eps must be positive, got {self.layer_norm_eps!r}")
        if not isinstance(self.initializer_range, (int, float)) or self.initializer_range <= 0:
            raise ConfigError(f"initializer_range must be positive, got {self.initializer_range!r}")
        if not isinstance(self.pad_token_id, int) or not 0 <= self.pad_token_id < self.vocab_size:
            raise ConfigError(f"pad_token_id must be an id in [0, {self.vocab_size}), got {self.pad_token_id!r}")

    @property
    def head_size(self) -> int:
        """d_k: dimensions per attention head (H / A)."""
        return self.hidden_size // self.num_attention_heads

    # -- presets -----------------------------------------------------------
    @classmethod
    def preset(cls, name: str, **overrides) -> "BertConfig":
        """One of Google's sizes: tiny, mini, small, medium, base, large (intermediate = 4H)."""
        if name not in PRESETS:
            raise ConfigError(f"unknown preset {name!r}; choose one of {list(PRESETS)}")
        layers, hidden, heads = PRESETS[name]
        fields = dict(num_hidden_layers=layers, hidden_size=hidden, num_attention_heads=heads,
                      intermediate_size=4 * hidden)
        fields.update(overrides)
        return cls(**fields)

    # -- config.json -------------------------------------------------------
    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["model_type"] = "bert"           # what transformers' AutoConfig reads
        d["architectures"] = ["BertModel"]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "BertConfig":
        """Build from a config.json dict; unknown keys (model_type, architectures, ...) are ignored."""
        if not isinstance(d, dict):
            raise ConfigError(f"a config must be a JSON object, got {type(d).__name__}")
        if d.get("model_type", "bert") != "bert":
            raise ConfigError(f"config.json describes model_type {d['model_type']!r}, not 'bert'")
        if d.get("position_embedding_type", "absolute") != "absolute":
            raise ConfigError(f"position_embedding_type {d['position_embedding_type']!r} is not supported: "
                              f"minibert implements BERT's learned absolute positions")
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def save(self, path) -> Path:
        """Write config.json (to `path`, or to `path/config.json` if `path` is a folder)."""
        path = Path(path)
        if path.is_dir():
            path = path / "config.json"
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, path)  # atomic: a reader never sees half a file
        return path

    @classmethod
    def load(cls, path) -> "BertConfig":
        """Read config.json (a file, or a folder that holds one)."""
        path = Path(path)
        if path.is_dir():
            path = path / "config.json"
        if not path.exists():
            raise ConfigError(f"no config file at {path}")
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ConfigError(f"{path} is not valid JSON: {err}") from None
        return cls.from_dict(d)

    save_pretrained = save
    from_pretrained = load
