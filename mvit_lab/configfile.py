"""Architecture files and ``--set key=value`` overrides (detectron2-style LazyConfig flow).

An architecture is named by a preset (``hiera_t``) or a YAML file::

    preset: mvitv2_s          # the base preset (required unless the file sets every knob)
    pool_mode: max            # any ArchConfig knob
    depths: [1, 2, 5, 2]

A file may also keep the knobs under a ``model:`` section (as experiment files do). Overrides
``key=value`` (or ``model.key=value``) are parsed with ``yaml.safe_load``, so ``[1, 224, 224]``,
``true``, ``1e-6`` and ``null`` mean what they look like. A key given twice in one mapping is
an error (PyYAML would keep the last silently). Models never import this module.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from mvit_lab._validate import did_you_mean
from mvit_lab.config import ArchConfig, knob_names
from mvit_lab.presets import get_config

__all__ = ["load_arch", "parse_overrides", "safe_load", "save_arch"]


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that reads ``1e-6`` as a float, as YAML 1.2 and JSON do (PyYAML's
    YAML 1.1 resolver wants a dot: ``1.0e-6``), and refuses a key given twice in one mapping
    (YAML 1.2 forbids it; PyYAML keeps the last value silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<:` merges are not duplicates
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.setdefault(key, key_node.start_mark.line + 1)
            except TypeError:  # an unhashable key: the base class reports it
                continue
            if first != key_node.start_mark.line + 1:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first given at line {first})",
                    key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def safe_load(text: str) -> Any:
    """Parse YAML (or JSON) safely; errors become one-line ``ValueError``s."""
    try:
        return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass: no arbitrary objects
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ValueError(f"{problem}{where}") from None


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``["pool_mode=max", "model.depths=[1,1]"]`` -> ``{"pool_mode": "max", "depths": [1,1]}``."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--set {item!r}: expected key=value")
        if key.startswith("model."):
            key = key[len("model."):]
        if key not in knob_names():
            raise ValueError(f"{key}: not an ArchConfig field (in --set {item!r})"
                             f"{did_you_mean(key, knob_names()) or _KNOWN}")
        try:
            out[key] = safe_load(text) if text.strip() else text
        except ValueError as err:
            raise ValueError(f"{key}: cannot parse value {text!r} in --set: {err}") from None
    return out


_KNOWN = f" (knobs: {', '.join(knob_names())})"


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = safe_load(path.read_text())
    except ValueError as err:
        raise ValueError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of ArchConfig knobs, "
                         f"got {type(data).__name__}")
    if "model" in data:
        data = data["model"]
        if not isinstance(data, dict):
            raise ValueError(f"{path}: 'model' must be a mapping of ArchConfig knobs")
    return dict(data)


def load_arch(source: str | Path, overrides: dict[str, Any] | None = None) -> ArchConfig:
    """A validated ArchConfig from a preset name or YAML file, with ``overrides`` on top."""
    overrides = dict(overrides or {})
    path = Path(source)
    if path.suffix in (".yaml", ".yml", ".json") or path.exists():
        if not path.is_file():
            raise ValueError(f"{path}: no such architecture file")
        knobs = _read_yaml(path)
        has_preset = "preset" in knobs
        preset = knobs.pop("preset", None)
        unknown = sorted(set(knobs) - set(knob_names()))
        if unknown:
            raise ValueError(f"{unknown[0]}: not an ArchConfig field (in {path})"
                             f"{did_you_mean(unknown[0], [*knob_names(), 'preset']) or _KNOWN}")
        missing = [k for k in knob_names() if k not in knobs]
        if not has_preset and missing:
            # the rest would silently be ArchConfig's defaults (MViTv2-B's)
            raise ValueError(f"{path}: no 'preset:' to take the {len(missing)} knobs it does "
                             f"not set from ({', '.join(missing[:3])}, ...); name a base "
                             "preset (preset: mvitv2_b is ArchConfig's defaults)")
        knobs.update(overrides)
        try:
            if preset is None:
                return ArchConfig(**knobs)
            return get_config(str(preset), **knobs)
        except ValueError as err:
            raise ValueError(f"{err} ({_blame(err, overrides, path)})") from None
    try:
        return get_config(str(source), **overrides)
    except ValueError as err:
        if _field(err) in overrides:
            raise ValueError(f"{err} ({_blame(err, overrides, None)})") from None
        raise


def _field(err: ValueError) -> str:
    """The knob an error names: ``depths[0]: ...`` -> ``depths``."""
    return str(err).partition(":")[0].partition("[")[0].strip()


def _blame(err: ValueError, overrides: dict[str, Any], path: Path | None) -> str:
    """Where the value an error names came from: ``--set`` or the file."""
    name = _field(err)
    if name in overrides:
        return f"from --set {name}={json.dumps(overrides[name])}"
    return f"in {path}"


def save_arch(cfg: ArchConfig, path: str | Path) -> Path:
    """Write the fully resolved config (every knob) as JSON, enough to rebuild the model."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
    return path
