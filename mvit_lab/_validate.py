"""Field checks shared by every config: each error names the field and the rule it breaks."""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["MAX_INT", "_as_bool", "_as_choice", "_as_float", "_as_int", "_as_triple", "_fail",
           "did_you_mean", "mapping_section"]

# the largest integer any knob takes: torch sizes are int64, and far smaller limits apply to
# each knob's meaning (see config.py); past this, arithmetic on sizes overflows silently
MAX_INT = 2**31 - 1


def _fail(name: str, rule: str) -> ValueError:
    return ValueError(f"{name}: {rule}")


def mapping_section(name: str, value: Any, known: Iterable[str]) -> dict[str, Any]:
    """A config section ``name``: ``{}`` when absent, else a mapping of ``known`` keys only."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{name}: must be a mapping, got {value!r}")
    known = set(known)
    unknown = sorted(set(value) - known)
    if unknown:
        raise ValueError(f"{name}.{unknown[0]}: unknown key (known: {', '.join(sorted(known))})")
    return value


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``known`` to a misspelt ``name``, else ``""``.

    A dotted ``name`` (``samples``, ``train.samples``) is also matched by its last part against
    the last parts of dotted known keys, so ``samples`` finds ``budget.samples``.
    """
    known = list(dict.fromkeys(known))
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.75)
    if not close:
        tail = name.rpartition(".")[2]
        by_tail: dict[str, list[str]] = {}
        for k in known:
            by_tail.setdefault(k.rpartition(".")[2], []).append(k)
        for match in difflib.get_close_matches(tail, list(by_tail), n=3, cutoff=0.75):
            close += [k for k in by_tail[match] if k != name]
    if not close:
        return ""
    return f" (did you mean {' or '.join(repr(c) for c in close[:3])}?)"


def _as_int(name: str, value: Any, minimum: int = 1, maximum: int = MAX_INT) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(name, f"must be an integer, got {value!r}")
    if value < minimum:
        raise _fail(name, f"must be >= {minimum}, got {value}")
    if value > maximum:
        raise _fail(name, f"must be <= {maximum:,}, got {value:,}")
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
