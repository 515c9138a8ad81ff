from __future__ import annotations

import pytest

from mvit_lab import get_config
from mvit_lab.config import knob_names
from mvit_lab.configfile import load_arch, parse_overrides, safe_load, save_arch


def test_yaml_reads_exponent_floats_like_json():
    assert safe_load("norm_eps: 1e-6") == {"norm_eps": 1e-6}
    assert safe_load("[1, 2.5e+3, -3E2]") == [1, 2500.0, -300.0]
    assert safe_load("v: 1_000") == {"v": 1000}


def test_yaml_refuses_python_objects():
    with pytest.raises(ValueError):
        safe_load("!!python/object/apply:os.system ['true']")


def test_overrides_parse_yaml_values_and_strip_model_prefix():
    assert parse_overrides(["model.kv_stride=null", "depths=[1, 1]", "pool_kernel=stride",
                            "cls_token=true"]) == dict(kv_stride=None, depths=[1, 1],
                                                       pool_kernel="stride", cls_token=True)


def test_file_with_preset_knobs_and_overrides(tmp_path):
    path = tmp_path / "arch.yaml"
    path.write_text("model:\n  preset: hiera_t\n  embed_dim: 64\n  norm_eps: 1e-5\n")
    cfg = load_arch(path, {"num_classes": 10})
    assert cfg == get_config("hiera_t", embed_dim=64, norm_eps=1e-5, num_classes=10)


def test_file_without_preset_is_refused_unless_it_sets_every_knob(tmp_path):
    """It silently built ArchConfig's defaults (MViTv2-B) for the knobs it did not set."""
    path = tmp_path / "arch.yml"
    path.write_text("depths: [1, 1]\ninput_size: [1, 32, 32]\nkv_stride: null\n")
    unset = len(knob_names()) - 3  # every knob but the three the file sets
    with pytest.raises(ValueError, match=rf"no 'preset:' to take the {unset} knobs .*preset: "
                                         r"mvitv2_b") as info:
        load_arch(path)
    assert str(path) in str(info.value)
    # a fully resolved file (as build --save writes) needs no preset; preset: null is explicit
    full = tmp_path / "full.json"
    save_arch(get_config("hiera_t", embed_dim=64), full)
    assert load_arch(full) == get_config("hiera_t", embed_dim=64)
    path.write_text("preset: null\ndepths: [1, 1]\ninput_size: [1, 32, 32]\nkv_stride: null\n")
    assert load_arch(path).depths == (1, 1)


def test_duplicate_keys_are_refused_with_the_key_and_lines():
    """PyYAML kept the last value silently."""
    with pytest.raises(ValueError, match=r"^duplicate key 'pool_mode' \(first given at line 2\)"
                                         r" at line 4, column 1$"):
        safe_load("preset: mvitv2_t\npool_mode: max\ndepths: [1, 1]\npool_mode: avg\n")
    with pytest.raises(ValueError, match=r"duplicate key 'lr' .* at line 3"):
        safe_load("train:\n  lr: 1\n  lr: 2\n")
    # the same key in two mappings, and YAML merges, are not duplicates
    assert safe_load("a: {x: 1}\nb: {x: 2}\n") == {"a": {"x": 1}, "b": {"x": 2}}
    assert safe_load("base: &b {x: 1}\nc:\n  <<: *b\n  y: 2\n")["c"] == {"x": 1, "y": 2}


def test_unknown_knobs_suggest_real_ones(tmp_path):
    path = tmp_path / "arch.yaml"
    path.write_text("preset: mvitv2_t\npool_mod: max\n")
    with pytest.raises(ValueError, match=r"pool_mod: .*did you mean 'pool_mode'\?"):
        load_arch(path)
    with pytest.raises(ValueError, match=r"did you mean 'embed_dim'\?"):
        parse_overrides(["embeddim=3"])
    with pytest.raises(ValueError, match=r"\(knobs: input_size, .*head_norm\)$"):
        parse_overrides(["samples=3"])  # nothing close: the real knobs, not a made-up key


def test_a_bad_override_blames_the_override_not_the_file(tmp_path):
    path = tmp_path / "arch.yaml"
    path.write_text("preset: mvitv2_t\nembed_dim: 64\n")
    with pytest.raises(ValueError, match=r"^num_heads: .*\(from --set num_heads=7\)$"):
        load_arch(path, {"num_heads": 7})
    with pytest.raises(ValueError, match=r"^pool_mode: .*\(from --set pool_mode=\"maxx\"\)$"):
        load_arch("mvitv2_t", {"pool_mode": "maxx"})
    path.write_text("preset: mvitv2_t\nnum_heads: 7\n")
    with pytest.raises(ValueError, match=rf"^num_heads: .*\(in {path}\)$"):
        load_arch(path, {"pool_mode": "max"})


@pytest.mark.parametrize(("text", "message"), [
    ("pool_mode: [", "not valid YAML"),
    ("- 1\n- 2\n", "expected a mapping"),
    ("preset: mvitv2_t\npooling: max\n", "pooling: not an ArchConfig field"),
    ("preset: mvitv2_t\nnum_heads: 5\n", "num_heads: stage 0 has 5 heads"),
    ("model: 3\n", "'model' must be a mapping"),
])
def test_bad_files_name_the_file_and_the_problem(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as info:
        load_arch(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
