"""A resumed run must continue the recipe it started with.

``train --resume --set train.epochs=9`` on a 3-epoch run would silently stretch the cosine
schedule mid-run and overwrite ``experiment.json``: the result would match neither recipe.
``check_resume_recipe`` compares the run folder's ``experiment.json`` with the experiment
about to resume and names every differing field. How a run executes (threads, data workers,
device) may change; what it computes may not.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mvit_lab.experiment import Experiment

__all__ = ["RECIPE_SECTIONS", "RUNTIME_KEYS", "check_resume_recipe"]

RECIPE_SECTIONS = ("data", "model", "train", "pretrain")
RUNTIME_KEYS = frozenset({"train.threads", "train.device", "data.num_workers",
                          # speed and retention switches: the same step up to rounding
                          "train.compile", "train.activation_checkpointing",
                          "train.fused_adamw", "train.tf32", "train.pin_memory", "train.keep",
                          "train.keep_weights", "train.checkpoint_format",
                          "train.async_checkpoint"})


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(_flat(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: tree}


def check_resume_recipe(out: str | Path, exp: Experiment) -> None:
    """A ValueError naming the fields in which ``exp`` differs from the run in ``out``."""
    path = Path(out) / "experiment.json"
    if not path.is_file():
        return  # nothing recorded yet: nothing to continue differently
    before = json.loads(path.read_text())
    now = json.loads(json.dumps(exp.to_dict()))  # tuples as lists, as stored
    old = _flat({k: before.get(k) for k in RECIPE_SECTIONS})
    new = _flat({k: now.get(k) for k in RECIPE_SECTIONS})
    changed = [k for k in sorted(set(old) | set(new))
               if k not in RUNTIME_KEYS and old.get(k) != new.get(k)
               and not _added_since(k, old, new)]
    if changed:
        detail = ", ".join(f"{k} {old.get(k)!r} -> {new.get(k)!r}" for k in changed[:6])
        more = f" and {len(changed) - 6} more" if len(changed) > 6 else ""
        raise ValueError(f"--resume: the recipe differs from the run in {out}: {detail}{more}; "
                         "resume with its settings, or start a new run (--out)")


def _added_since(key: str, old: dict[str, Any], new: dict[str, Any]) -> bool:
    """A key the run's record predates, now at the value that behaves as the run did."""
    import dataclasses

    from mvit_lab.experiment import TrainConfig

    defaults = {f"train.{f.name}": f.default for f in dataclasses.fields(TrainConfig)}
    if key not in old:
        return key in defaults and new.get(key) == defaults[key]
    # before amp: auto, bfloat16 was the default and meant what auto means (bfloat16 on CUDA,
    # float32 on the CPU); such records have no train.compile
    return (key == "train.amp" and "train.compile" not in old and old[key] == "bfloat16"
            and new.get(key) == "auto")
