"""BertConfig: the sizes of a BERT, with Hugging Face's config.json field names.

The names are exactly those of `transformers.BertConfig`, so a config.json
written by Hugging Face loads here and one written here loads there. That
includes the fields of the fine-tuning heads: id2label / label2id (whose
length is num_labels, as in transformers), classifier_dropout, problem_type.

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
from pathlib import Path

from minibert.errors import InputError
from minibert.files import write_json

ACTIVATIONS = ("gelu", "gelu_new")  # exact erf GELU, and the tanh approximation
PROBLEM_TYPES = (None, "single_label_classification", "regression")

PRESETS = {
    "tiny": (2, 128, 2),
    "mini": (4, 256, 4),
    "small": (4, 512, 8),
    "medium": (8, 512, 8),
    "base": (12, 768, 12),
    "large": (24, 1024, 16),
}


class ConfigError(InputError):
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
    # -- fine-tuning heads (minibert/model/heads/); Hugging Face's PretrainedConfig fields --
    classifier_dropout: float | None = None   # dropout before a classifier; None = hidden_dropout_prob
    problem_type: str | None = None       # sequence classification: None (from num_labels and the labels),
                                          # "single_label_classification" or "regression"
    id2label: dict | None = None          # class index -> name; its length *is* num_labels (HF's rule)
    label2id: dict | None = None          # name -> class index
    num_labels: int | None = None         # classes of a classifier head; None: len(id2label), else 2

    def __post_init__(self):
        """Settle the label fields as transformers' PretrainedConfig does: id2label decides num_labels
        (JSON's string keys become ints); without it, num_labels (default 2) makes LABEL_0, LABEL_1, ..."""
        if self.id2label is not None:
            if not isinstance(self.id2label, dict) or not self.id2label:
                raise ConfigError(f"id2label must be a non-empty mapping of class index to name, got {self.id2label!r}")
            try:
                id2label = {int(k): str(v) for k, v in self.id2label.items()}
            except (TypeError, ValueError):
                raise ConfigError(f"id2label keys must be class indices, got {list(self.id2label)!r}") from None
            if sorted(id2label) != list(range(len(id2label))):
                raise ConfigError(f"id2label keys must be 0 .. {len(id2label) - 1}, got {sorted(id2label)}")
            if self.num_labels is not None and self.num_labels != len(id2label):
                raise ConfigError(f"num_labels={self.num_labels} but id2label has {len(id2label)} entries")
            object.__setattr__(self, "id2label", dict(sorted(id2label.items())))
        else:
            n = 2 if self.num_labels is None else self.num_labels
            if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
                raise ConfigError(f"num_labels must be a positive integer, got {n!r}")
            object.__setattr__(self, "id2label", {i: f"LABEL_{i}" for i in range(n)})
        object.__setattr__(self, "num_labels", len(self.id2label))
        if self.label2id is None:
            object.__setattr__(self, "label2id", {v: k for k, v in self.id2label.items()})
        else:
            object.__setattr__(self, "label2id", {str(k): int(v) for k, v in self.label2id.items()})
        object.__setattr__(self, "_settled", True)
        self.validate()

    def __setattr__(self, name, value):
        """After construction the label fields stay consistent, as in transformers (where num_labels
        *is* len(id2label)): `config.num_labels = 5` re-makes id2label and label2id (LABEL_0 ..),
        `config.id2label = {...}` sets num_labels and label2id."""
        if "_settled" not in self.__dict__ or name not in ("num_labels", "id2label"):
            return super().__setattr__(name, value)
        if name == "num_labels":
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"num_labels must be a positive integer, got {value!r}")
            if value == self.num_labels:
                return None
            value = {i: f"LABEL_{i}" for i in range(value)}
        settled = BertConfig(id2label=value)                 # checks and normalises the mapping
        for field in ("id2label", "label2id", "num_labels"):
            super().__setattr__(field, getattr(settled, field))
        return None

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
        p = self.classifier_dropout
        if p is not None and (isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p < 1.0):
            raise ConfigError(f"classifier_dropout must be None or in [0, 1), got {p!r}")
        if self.problem_type not in PROBLEM_TYPES:
            hint = (" (minibert has no multi-label loss: BCE with logits is not implemented)"
                    if self.problem_type == "multi_label_classification" else "")
            raise ConfigError(f"problem_type must be one of {list(PROBLEM_TYPES)}, got {self.problem_type!r}{hint}")
        if self.problem_type == "single_label_classification" and self.num_labels == 1:
            raise ConfigError('problem_type="single_label_classification" needs num_labels > 1; '
                              'use num_labels=2 for two classes, or problem_type="regression"')
        if len(self.id2label) != self.num_labels:
            raise ConfigError(f"num_labels={self.num_labels} but id2label has {len(self.id2label)} entries")
        if sorted(self.label2id.values()) != list(range(self.num_labels)):
            raise ConfigError(f"label2id must map names to 0 .. {self.num_labels - 1}, got {self.label2id!r}")

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
    @property
    def classifier_dropout_prob(self) -> float:
        """The dropout before a classifier head: classifier_dropout, else hidden_dropout_prob (HF's rule)."""
        return self.hidden_dropout_prob if self.classifier_dropout is None else self.classifier_dropout

    def to_dict(self) -> dict:
        """config.json's fields. Like transformers, num_labels is not written: it is len(id2label)."""
        self.validate()
        d = dataclasses.asdict(self)
        del d["num_labels"]
        d["id2label"] = {str(k): v for k, v in self.id2label.items()}   # JSON keys are strings
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
        fields = {k: v for k, v in d.items() if k in names}
        if fields.get("id2label") is not None:
            fields.pop("num_labels", None)     # transformers: id2label wins over a stale num_labels
        return cls(**fields)

    def save(self, path) -> Path:
        """Write config.json (to `path`, or to `path/config.json` if `path` is a folder)."""
        path = Path(path)
        if path.is_dir():
            path = path / "config.json"
        return write_json(path, self.to_dict())   # atomic: a reader never sees half a file

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
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ConfigError(f"{path} is not valid JSON: {err}") from None
        try:
            return cls.from_dict(d)
        except ConfigError as err:                  # say which file holds the bad field
            raise ConfigError(f"{path}: {err}") from None

    save_pretrained = save
    from_pretrained = load
