"""minibert/model/config.py: BertConfig's defaults, presets, checks and clear errors, the label fields,
and config.json round trips with transformers."""
import pytest

from minibert import BertConfig
from minibert.model.config import ConfigError
from minibert.model.heads import BertForQuestionAnswering
from helpers import head_config


def test_config_defaults_are_berts():
    cfg = BertConfig()
    assert (cfg.layer_norm_eps, cfg.initializer_range, cfg.vocab_size, cfg.max_position_embeddings,
            cfg.type_vocab_size, cfg.hidden_act, cfg.hidden_dropout_prob) == (1e-12, 0.02, 30522, 512, 2, "gelu", 0.1)


def test_config_errors_and_presets(tmp_path):
    with pytest.raises(ConfigError, match="divisible by num_attention_heads"):
        BertConfig(hidden_size=100, num_attention_heads=3)
    with pytest.raises(ConfigError, match="num_hidden_layers must be a positive integer"):
        BertConfig(num_hidden_layers=0)
    with pytest.raises(ConfigError, match="vocab_size must be a positive integer"):
        BertConfig(vocab_size=-5)
    with pytest.raises(ConfigError, match="unknown hidden_act 'relu'"):
        BertConfig(hidden_act="relu")
    with pytest.raises(ConfigError, match="unknown preset"):
        BertConfig.preset("huge")
    sizes = {n: (c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.intermediate_size)
             for n in ("tiny", "mini", "small", "medium", "base", "large") for c in [BertConfig.preset(n)]}
    assert sizes == {"tiny": (2, 128, 2, 512), "mini": (4, 256, 4, 1024), "small": (4, 512, 8, 2048),
                     "medium": (8, 512, 8, 2048), "base": (12, 768, 12, 3072), "large": (24, 1024, 16, 4096)}
    cfg = BertConfig.preset("mini", hidden_act="gelu_new")
    cfg.save(tmp_path)
    assert BertConfig.load(tmp_path) == cfg
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        BertConfig.load(tmp_path / "bad.json")
    with pytest.raises(ConfigError, match="no config file"):
        BertConfig.load(tmp_path / "missing")


def test_config_json_round_trips_with_transformers(tmp_path):
    import transformers
    cfg = BertConfig.preset("tiny", hidden_act="gelu_new", layer_norm_eps=1e-7)
    cfg.save(tmp_path)
    hf = transformers.BertConfig.from_pretrained(tmp_path)
    assert (hf.hidden_size, hf.num_hidden_layers, hf.hidden_act, hf.layer_norm_eps) == (128, 2, "gelu_new", 1e-7)
    hf.save_pretrained(tmp_path / "hf")
    assert BertConfig.load(tmp_path / "hf") == cfg


def test_label_fields_round_trip_through_config_json(tmp_path):
    import transformers
    cfg = BertConfig.preset("tiny", id2label={0: "NEG", 1: "NEU", 2: "POS"}, classifier_dropout=0.25)
    assert cfg.num_labels == 3 and cfg.label2id == {"NEG": 0, "NEU": 1, "POS": 2}
    cfg.save(tmp_path)
    hf = transformers.BertConfig.from_pretrained(tmp_path)
    assert (hf.num_labels, hf.id2label, hf.label2id, hf.classifier_dropout) == (3, cfg.id2label, cfg.label2id, 0.25)
    hf.num_labels = 4
    hf.save_pretrained(tmp_path / "hf")
    back = BertConfig.load(tmp_path / "hf")
    assert back.num_labels == 4 and back.id2label[3] == "LABEL_3" and back.classifier_dropout == 0.25
    cfg.num_labels = 4                               # as transformers: re-makes id2label / label2id
    assert cfg.id2label == back.id2label and cfg.label2id == back.label2id
    assert BertConfig().num_labels == 2 and BertConfig(num_labels=1).id2label == {0: "LABEL_0"}


def test_bad_configs_raise_clear_errors():
    with pytest.raises(ValueError, match="BertForQuestionAnswering needs num_labels=2"):
        BertForQuestionAnswering(head_config("sequence"))
    with pytest.raises(ConfigError, match="num_labels=3 but id2label has 2 entries"):
        BertConfig(num_labels=3, id2label={0: "a", 1: "b"})
    with pytest.raises(ConfigError, match="multi-label loss"):
        BertConfig(problem_type="multi_label_classification")
    with pytest.raises(ConfigError, match="needs num_labels > 1"):
        BertConfig(num_labels=1, problem_type="single_label_classification")
    with pytest.raises(ConfigError, match=r"classifier_dropout must be None or in \[0, 1\)"):
        BertConfig(classifier_dropout=1.5)
    with pytest.raises(ConfigError, match="num_labels must be a positive integer"):
        BertConfig().num_labels = 0
