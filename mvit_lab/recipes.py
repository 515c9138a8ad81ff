"""Published training recipes as named, cited data.

``train: {recipe: mvitv2_in1k}`` (or ``pretrain: {recipe: hiera_mae_in1k}``) fills every key the
experiment file leaves unset, in its own section and in ``model`` / ``data`` where the recipe
says so (drop path, head dropout, test views). Keys the file sets, and ``--set`` overrides,
win. Size-dependent values (``BySize``) follow the model's size class, read from
``model.preset`` (``mvitv2_b`` -> B, ``hiera_b_plus`` -> B+) or given as ``recipe_size``.

A recipe states ``lr`` per ``lr_batch`` samples, as the papers do; training scales it (and
``min_lr``, ``warmup_start_lr``) by the real global batch. ``global_batch`` is the published
one; fewer devices reach it by accumulating gradients.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["SIZES", "BySize", "Recipe", "get_recipe", "list_recipes", "resolve_recipes",
           "size_of_preset"]

SIZES = ("T", "S", "B", "B+", "L", "H")


class BySize(dict):
    """A value per model size class: ``BySize(T=0.1, S=0.1, B=0.3)`` (``Bp`` for B+)."""

    def __init__(self, **values: Any) -> None:
        super().__init__({("B+" if k == "Bp" else k): v for k, v in values.items()})

    def at(self, size: str | None, key: str, recipe: str, section: str) -> Any:
        if size is None:
            raise ValueError(f"{section}.recipe_size: recipe {recipe} sets {key} by model size "
                             f"({', '.join(self)}); model.preset names no size, so set "
                             f"{section}.recipe_size")
        if size not in self:
            raise ValueError(f"{section}.recipe_size: recipe {recipe} has no {key} for size "
                             f"{size} (it has {', '.join(self)})")
        return self[size]


@dataclass(frozen=True)
class Recipe:
    name: str
    section: str  # the section whose ``recipe`` key names it: train or pretrain
    source: str  # where every value comes from
    values: dict[str, Any]  # dotted keys (train.lr, model.drop_path_rate) -> value or BySize
    notes: str = ""  # where the recipe departs from its source, and why

    @property
    def size_dependent(self) -> bool:
        return any(isinstance(v, BySize) for v in self.values.values())


_REGISTRY: dict[str, Recipe] = {}


def _register(recipe: Recipe) -> None:
    if recipe.name in _REGISTRY:
        raise ValueError(f"recipe {recipe.name} registered twice")
    bad = [k for k in recipe.values if k.split(".")[0] not in (recipe.section, "model", "data")]
    if bad:
        raise ValueError(f"recipe {recipe.name}: {bad[0]} is outside {recipe.section}, model "
                         "and data")
    _REGISTRY[recipe.name] = recipe


def list_recipes() -> list[str]:
    return sorted(_REGISTRY)


def get_recipe(name: str, section: str = "train") -> Recipe:
    recipe = _REGISTRY.get(name)
    if recipe is None:
        raise ValueError(f"{section}.recipe: unknown recipe {name!r} (known: "
                         f"{', '.join(list_recipes())})")
    if recipe.section != section:
        raise ValueError(f"{section}.recipe: {name} is a {recipe.section} recipe; set it as "
                         f"{recipe.section}.recipe")
    return recipe


_SIZE_WORDS = {"t": "T", "s": "S", "b": "B", "b_plus": "B+", "l": "L", "h": "H"}


def size_of_preset(preset: Any) -> str | None:
    """``mvitv2_s_16x4`` -> S, ``hiera_b_plus`` -> B+; None for a name without a size."""
    if not isinstance(preset, str):
        return None
    match = re.match(r"^[a-z]+(?:v\d)?_(b_plus|[tsblh])(?:_|$)", preset)
    return _SIZE_WORDS[match.group(1)] if match else None


def resolve_recipes(tree: dict[str, Any]) -> dict[str, Any]:
    """The experiment mapping with every recipe's values filled in where the file left the
    key unset (a copy). ``recipe_size`` is recorded when a value depended on it."""
    tree = copy.deepcopy(tree)
    for section in ("pretrain", "train"):
        node = tree.get(section)
        if not isinstance(node, dict) or node.get("recipe") is None:
            continue
        name = node["recipe"]
        if not isinstance(name, str):
            raise ValueError(f"{section}.recipe: must be a recipe name, got {name!r}")
        recipe = get_recipe(name, section)
        model = tree.get("model") if isinstance(tree.get("model"), dict) else {}
        size = node.get("recipe_size")
        if size is not None and size not in SIZES:
            raise ValueError(f"{section}.recipe_size: must be one of {', '.join(SIZES)}; got "
                             f"{size!r}")
        size = size or size_of_preset(model.get("preset"))
        for key, value in recipe.values.items():
            part, field = key.split(".", 1)
            target = tree.setdefault(part, {})
            if not isinstance(target, dict):
                raise ValueError(f"{part}: must be a mapping, got {type(target).__name__}")
            if field in target:
                continue  # the file (or --set) says otherwise
            if isinstance(value, BySize):
                value = value.at(size, key, name, section)
            target[field] = copy.deepcopy(value)
        if recipe.size_dependent:
            node["recipe_size"] = size
    return tree


# -- the recipes ----------------------------------------------------------------------------------
_IN1K_AUG = {"train.crop_scale": [0.08, 1.0], "train.crop_ratio": [0.75, 1.3333],
             "train.hflip": 0.5, "train.random_erasing": 0.25, "train.mixup": 0.8,
             "train.cutmix": 1.0, "train.mixup_prob": 1.0, "train.mixup_switch_prob": 0.5,
             "train.label_smoothing": 0.1, "train.interpolation": "bicubic",
             "train.eval_crop_pct": 0.875, "train.repeated_aug": 1, "train.ema_decay": None}

_register(Recipe(
    name="mvitv2_in1k", section="train",
    source="facebookresearch/mvit configs/MVITv2_{T,S,B}.yaml, configs/test/MVITv2_L_test.yaml "
           "and mvit/config/defaults.py (AUG, MIXUP, SOLVER); batch 2048 from the MViTv2 paper "
           "(Li et al. 2022), lr 2.5e-4 per 256 (BASE_LR_SCALE_NUM_SHARDS, 256 per shard)",
    values={
        "train.epochs": 300, "train.global_batch": 2048, "train.lr": 2.5e-4,
        "train.lr_batch": 256, "train.min_lr": 1e-6, "train.warmup_start_lr": 1e-8,
        "train.warmup_epochs": 70, "train.weight_decay": 0.05, "train.betas": [0.9, 0.999],
        "train.clip_grad": 1.0, "train.layer_decay": None, "train.no_decay_pos": True,
        "train.rand_augment": "rand-m9-n6-mstd0.5-inc1", **_IN1K_AUG,
        "model.drop_path_rate": BySize(T=0.1, S=0.1, B=0.3, L=0.5),
    },
    notes="COSINE_END_LR and WARMUP_START_LR scale with the shards like BASE_LR, so min_lr and "
          "warmup_start_lr are per 256 too; COLOR_JITTER 0.4 is inert beside RandAugment in "
          "timm's transforms_imagenet_train, so it is left out"))

_register(Recipe(
    name="hiera_mae_in1k", section="pretrain",
    source="Hiera (Ryali et al. 2023), appendix: MAE pretraining settings for IN-1K; the "
           "decoder (8 blocks x 512) of facebookresearch/hiera hiera_mae.py; bicubic crops as "
           "MAE's main_pretrain.py",
    values={
        "pretrain.epochs": 1600, "pretrain.global_batch": 4096, "pretrain.lr": 8e-4,
        "pretrain.lr_batch": 4096, "pretrain.min_lr": 0.0, "pretrain.weight_decay": 0.05,
        "pretrain.betas": [0.9, 0.95], "pretrain.warmup_epochs": 40,
        "pretrain.mask_ratio": 0.6, "pretrain.norm_pix_loss": True,
        "pretrain.decoder_dim": 512, "pretrain.decoder_depth": 8, "pretrain.decoder_heads": 16,
        "pretrain.crop_scale": [0.2, 1.0], "pretrain.hflip": 0.5, "pretrain.repeated_aug": 1,
        "pretrain.interpolation": "bicubic",
        "pretrain.drop_path_rate": BySize(T=0.0, S=0.0, B=0.2, Bp=0.2, L=0.2, H=0.3),
    },
    notes="facebookresearch/hiera ships no training code; the values are the paper's table"))

_register(Recipe(
    name="hiera_ft_in1k", section="train",
    source="Hiera (Ryali et al. 2023), appendix: IN-1K fine-tuning settings (MAE's fine-tuning "
           "recipe: AdamW (0.9, 0.999), min lr 1e-6, no clipping)",
    values={
        "train.epochs": BySize(T=300, S=200, B=100, Bp=100, L=50, H=50),
        "train.global_batch": 1024, "train.lr": BySize(T=2e-3, S=2e-3, B=2e-3, Bp=1e-3,
                                                       L=1e-3, H=1e-3),
        "train.lr_batch": 1024, "train.min_lr": 1e-6, "train.warmup_start_lr": 0.0,
        "train.warmup_epochs": 5, "train.weight_decay": 0.05, "train.betas": [0.9, 0.999],
        "train.clip_grad": None, "train.no_decay_pos": True,
        "train.layer_decay": BySize(T=0.65, S=0.65, B=0.7, Bp=0.7, L=0.85, H=0.85),
        "train.rand_augment": "rand-m9-mstd0.5-inc1", **_IN1K_AUG,
        "model.drop_path_rate": BySize(T=0.1, S=0.1, B=0.1, Bp=0.1, L=0.1, H=0.3),
    },
    notes="eval crop 224 of 256 is crop_pct 0.875; min_lr scales with the batch like lr"))

_K400 = {
    "train.epochs": 200, "train.global_batch": 16, "train.lr": 1e-4, "train.lr_batch": 16,
    "train.min_lr": 1e-6, "train.warmup_start_lr": 1e-6, "train.warmup_epochs": 30,
    "train.weight_decay": 0.05, "train.betas": [0.9, 0.999], "train.clip_grad": 1.0,
    "train.layer_decay": None, "train.no_decay_pos": False,
    "train.crop_scale": [0.08, 1.0], "train.crop_ratio": [0.75, 1.3333],
    "train.short_side_jitter": None, "train.hflip": 0.5,
    "train.rand_augment": "rand-m7-n4-mstd0.5-inc1", "train.random_erasing": 0.25,
    "train.repeated_aug": 2, "train.mixup": 0.8, "train.cutmix": 1.0, "train.mixup_prob": 1.0,
    "train.mixup_switch_prob": 0.5, "train.label_smoothing": 0.1,
    "train.interpolation": "bicubic", "train.eval_crop_pct": 1.0, "train.ema_decay": None,
    "model.head_dropout": 0.5, "data.stride": 4, "data.eval_clips": 5,
}
_K400_NOTES = ("lr 1e-4 per 16 videos is per 8-GPU shard (TRAIN.BATCH_SIZE 16, "
               "BASE_LR_SCALE_NUM_SHARDS); each video gives AUG.NUM_SAMPLE = 2 clips. "
               "TRAIN_JITTER_SCALES_RELATIVE replaces the short-side jitter [256, 320] in "
               "SlowFast, so these recipes crop by area; short_side_jitter is the classic "
               "alternative. ZERO_DECAY_POS_CLS is False: position tables are decayed. "
               "Test views are temporal x spatial: 5 x 1 (the papers write 1 x 5, spatial "
               "first). Random erasing draws one box per clip (SlowFast draws per frame)")

_register(Recipe(
    name="mvit_k400", section="train",
    source="facebookresearch/SlowFast configs/Kinetics/MVIT_B_16x4_CONV.yaml; 5 x 1 test views "
           "from the MViT paper (Fan et al. 2021, Table 2: 1 x 5 spatial x temporal)",
    values={**_K400, "model.drop_path_rate": BySize(B=0.2), "data.eval_crops": 1},
    notes=_K400_NOTES + "; the config's TEST section leaves NUM_ENSEMBLE_VIEWS at its default "
                        "10, the paper reports 5"))

_register(Recipe(
    name="mvitv2_k400", section="train",
    source="facebookresearch/SlowFast configs/Kinetics/MVITv2_S_16x4.yaml, MVITv2_B_32x3.yaml, "
           "MVITv2_L_40x3_test.yaml",
    values={**_K400, "model.drop_path_rate": BySize(S=0.2, B=0.3, L=0.75),
            "data.eval_crops": BySize(S=1, B=1, L=3)},
    notes=_K400_NOTES))

_register(Recipe(
    name="hiera_mae_k400", section="pretrain",
    source="mask ratio 0.9: Hiera (Ryali et al. 2023); 800 epochs: Hiera's K400 ablation "
           "protocol; the rest is MAE-ST (facebookresearch/mae_st main_pretrain.py defaults "
           "and PRETRAIN.md): blr 1.6e-3 per 256 clips with repeat_aug 4 (so per 64 videos), "
           "AdamW (0.9, 0.95), wd 0.05, warm-up 5, clip 0.02, crop area [0.5, 1.0] aspect "
           "[0.75, 1.3333], decoder 4 x 512",
    values={
        "pretrain.epochs": 800, "pretrain.lr": 1.6e-3, "pretrain.lr_batch": 64,
        "pretrain.global_batch": 128, "pretrain.min_lr": 0.0, "pretrain.weight_decay": 0.05,
        "pretrain.betas": [0.9, 0.95], "pretrain.warmup_epochs": 5, "pretrain.mask_ratio": 0.9,
        "pretrain.norm_pix_loss": True, "pretrain.decoder_dim": 512,
        "pretrain.decoder_depth": 4, "pretrain.decoder_heads": 16,
        "pretrain.crop_scale": [0.5, 1.0], "pretrain.hflip": 0.5, "pretrain.repeated_aug": 4,
        "pretrain.interpolation": "bilinear",
        "pretrain.drop_path_rate": 0.0, "pretrain.clip_grad": 0.02, "data.stride": 4,
    },
    notes="Hiera publishes no separate video pretraining table, so MAE-ST's values stand in; "
          "global batch 128 videos = MAE-ST's 512 clips / repeat_aug 4"))
