from __future__ import annotations

import pytest

from mvit_lab import get_config
from mvit_lab.configfile import load_arch, parse_overrides, safe_load


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


def test_file_without_preset_uses_config_defaults(tmp_path):
    path = tmp_path / "arch.yml"
    path.write_text("depths: [1, 1]\ninput_size: [1, 32, 32]\nkv_stride: null\n")
    cfg = load_arch(path)
    assert cfg.depths == (1, 1) and cfg.kv_stride is None


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
