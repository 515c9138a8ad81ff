"""Field checks shared by every config: each error names the field and the rule it breaks."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = ["_as_bool", "_as_choice", "_as_float", "_as_int", "_as_triple", "_fail"]


def _fail(name: str, rule: str) -> ValueError:
    return ValueError(f"{name}: {rule}")


def _as_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(name, f"must be an integer, got {value!r}")
    if value < minimum:
        raise _fail(name, f"must be >= {minimum}, got {value}")
    return value


def _as_float(name: str, value: Any, low: float, high: float | None = None,
              low_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(name, f"must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise _fail(name, f"must be finite, got {value}")
    if value < low or (low_open and value == low):
        raise _fail(name, f"must be {'>' if low_open else '>='} {low}, got {value}")
    if high is not None and value >= high:
        raise _fail(name, f"must be < {high}, got {value}")
    return value


def _as_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _fail(name, f"must be true or false, got {value!r}")
    return value


def _as_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    if value not in choices:
        raise _fail(name, f"must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value


def _as_triple(name: str, value: Any, minimum: int = 1) -> tuple[int, int, int]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 3:
        raise _fail(name, f"must be a (T, H, W) triple of integers (T = 1 for images), "
                          f"got {value!r}")
    return tuple(_as_int(f"{name}[{i}]", v, minimum) for i, v in enumerate(value))  # type: ignore[return-value]
