"""Architecture files and ``--set key=value`` overrides (detectron2-style LazyConfig flow).

An architecture is named by a preset (``hiera_t``) or a YAML file::

    preset: mvitv2_s          # optional base preset
    pool_mode: max            # any ArchConfig knob
    depths: [1, 2, 5, 2]

A file may also keep the knobs under a ``model:`` section (as experiment files do). Overrides
``key=value`` (or ``model.key=value``) are parsed with ``yaml.safe_load``, so ``[1, 224, 224]``,
``true``, ``1e-6`` and ``null`` mean what they look like. Models never import this module.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from mvit_lab.config import ArchConfig, knob_names
from mvit_lab.presets import get_config

__all__ = ["load_arch", "parse_overrides", "safe_load", "save_arch"]


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that reads ``1e-6`` as a float, as YAML 1.2 and JSON do (PyYAML's
    YAML 1.1 resolver wants a dot: ``1.0e-6``)."""


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
            raise ValueError(f"{key}: not an ArchConfig field (in --set {item!r})")
        try:
            out[key] = safe_load(text) if text.strip() else text
        except ValueError as err:
            raise ValueError(f"{key}: cannot parse value {text!r} in --set: {err}") from None
    return out


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
        preset = knobs.pop("preset", None)
        unknown = sorted(set(knobs) - set(knob_names()))
        if unknown:
            raise ValueError(f"{unknown[0]}: not an ArchConfig field (in {path})")
        knobs.update(overrides)
        try:
            if preset is None:
                return ArchConfig(**knobs)
            return get_config(str(preset), **knobs)
        except ValueError as err:
            raise ValueError(f"{err} (in {path})") from None
    return get_config(str(source), **overrides)


def save_arch(cfg: ArchConfig, path: str | Path) -> Path:
    """Write the fully resolved config (every knob) as JSON, enough to rebuild the model."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
    return path
