"""The recipe a sweep ran with, beside its numbers, and whether it is a published one.

Read from the sweep's parent run, which logs the resolved experiment (``experiment.train.*``,
``experiment.data.*``, ``experiment.pretrain.*``: every recipe value filled in before anything
ran). A sweep is flagged unless every section that trains names a published recipe
(:mod:`mvit_lab.recipes`) and keeps every value of it: a 2-epoch toy ladder, or a published
recipe cut to 2 epochs, can never pass for the paper's protocol. The search space may also vary
``train.*`` keys per trial; those are named too.
"""

from __future__ import annotations

import json
from typing import Any

from mvit_lab.dashboards.meta import unflatten
from mvit_lab.recipes import BySize, get_recipe

__all__ = ["AUGMENTATION", "format_recipe", "recipe_info"]

# the train keys that make up "augmentation", shown when set (not None, 0 or off)
AUGMENTATION = ("crop_scale", "crop_ratio", "short_side_jitter", "hflip", "rand_augment",
                "random_erasing", "mixup", "cutmix", "label_smoothing", "repeated_aug")
# what says how much data, and which, per dataset
_DATA = {"digits": ("train_fraction",), "moving_digits": ("num_train", "frames", "stride"),
         "image_folder": ("root",),
         "video_list": ("train_csv", "stride", "eval_clips", "eval_crops")}


def _same(a: Any, b: Any) -> bool:
    def norm(v: Any) -> Any:
        if isinstance(v, (list, tuple)):
            return [norm(x) for x in v]
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v)
        return v

    return json.dumps(norm(a), sort_keys=True) == json.dumps(norm(b), sort_keys=True)


def _augmentation(node: dict[str, Any]) -> dict[str, Any]:
    """The augmentation keys that are on: not None / 0, a crop ratio only with a crop, more
    than one repeat."""
    out = {}
    for k in AUGMENTATION:
        v = node.get(k)
        if v in (None, 0, 0.0, False, []) or (k == "repeated_aug" and v == 1) or (
                k == "crop_ratio" and node.get("crop_scale") is None):
            continue
        out[k] = v
    return out


def _section(params: dict[str, str], section: str, knobs: list[str]) -> dict[str, Any] | None:
    tree = unflatten(params, "experiment.")
    node = tree.get(section)
    if not isinstance(node, dict):
        return None
    model, data = tree.get("model") or {}, tree.get("data") or {}
    name = node.get("recipe")
    out = dict(section=section, recipe=name, source=None, notes=None, epochs=node.get("epochs"),
               augmentation=_augmentation(node),
               departures=[], varied=[k for k in knobs if k.startswith(f"{section}.")],
               error=None)
    if not isinstance(name, str):
        return out
    try:
        recipe = get_recipe(name, section)
    except ValueError as err:  # a recipe this version of mvit-lab does not know
        out["error"] = str(err)
        return out
    out["source"], out["notes"] = recipe.source, recipe.notes or None
    size = node.get("recipe_size")
    used = {section: node, "model": model, "data": data}
    for key, published in recipe.values.items():
        if isinstance(published, BySize):
            if size not in published:
                continue  # the resolution would have failed; the run says which size it was
            published = published[size]
        part, field = key.split(".", 1)
        value = (used.get(part) or {}).get(field)
        if not _same(value, published):
            out["departures"].append((key, published, value))
    return out


def recipe_info(params: dict[str, str], knobs: list[str] | None = None) -> dict[str, Any]:
    """The recipe of a sweep from its parent run's params
    (:func:`mvit_lab.dashboards.meta.parent_params`) and the knobs it varies.

    Returns ``sections`` (train, and pretrain when the sweep pretrains: ``recipe`` name or
    None, ``source``, ``epochs``, ``augmentation``, ``departures`` ``(key, published,
    used)``, ``varied`` train keys), ``data`` (the dataset and how much of it), ``published``
    (True only when every section runs a published recipe unchanged) and ``flag`` (why not, or
    None).
    """
    knobs = knobs or []
    sections = [s for s in (_section(params, name, knobs) for name in ("pretrain", "train"))
                if s is not None]
    data = unflatten(params, "experiment.data.")
    data = {k: data[k] for k in ("dataset", *_DATA.get(data.get("dataset"), ())) if k in data}
    if not sections:
        return dict(sections=[], data=data, published=False,
                    flag="the sweep's parent run logged no recipe: its protocol is unknown")
    reasons = []
    for s in sections:
        where = f"{s['section']}.recipe"
        if s["error"]:
            reasons.append(f"{where}: {s['error']}")
        elif s["recipe"] is None:
            reasons.append(f"{s['section']}: not a published recipe ({s['epochs']} epochs, "
                           "this file's own settings)")
        elif s["departures"]:
            shown = ", ".join(f"{k} {_short(v)} (published {_short(p)})"
                              for k, p, v in s["departures"][:4])
            more = len(s["departures"]) - 4
            reasons.append(f"{s['section']}: departs from the published recipe {s['recipe']}: "
                           f"{shown}" + (f" and {more} more" if more > 0 else ""))
        if s["varied"]:
            reasons.append(f"the search varies {', '.join(s['varied'])} per trial")
    flag = None
    if reasons:
        flag = "NOT a published protocol. " + "; ".join(reasons)
    return dict(sections=sections, data=data, published=not reasons, flag=flag)


def _short(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v)


def format_recipe(info: dict[str, Any]) -> list[str]:
    """The recipe as short lines for the page: one per section, then the data."""
    lines = []
    for s in info["sections"]:
        name = f"recipe {s['recipe']}" if s["recipe"] else "no published recipe"
        aug = ", ".join(f"{k} {_short(v)}" for k, v in s["augmentation"].items()) or "none"
        line = f"{s['section']}: {name}; {s['epochs']} epochs; augmentation: {aug}"
        if s["source"]:
            line += f"; source: {s['source']}"
        lines.append(line)
    if info["data"]:
        lines.append("data: " + ", ".join(f"{k} {_short(v)}" for k, v in info["data"].items()))
    return lines
