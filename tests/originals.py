"""The original SlowFast and facebookresearch/mvit ``MViT`` classes, for equivalence tests.

No package ships them. Where their sources are at hand, the tests import them unchanged:
``MVIT_LAB_ORIGINALS`` names a folder holding ``SlowFast/slowfast`` and ``mvit/mvit`` checkouts,
or the git snapshots under ``/work/.mirror`` are exported (``git archive``) into a temporary
folder. Elsewhere (CI) the tests that need them skip, saying why. Nothing is copied into this
repository.

Their package ``__init__`` files pull in training-only dependencies (pytorchvideo, detectron2,
simplejson, psutil); the packages are registered empty instead and the few imports the model
modules make outside the model code are stubbed.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import logging
import os
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest

_MIRRORS = {"slowfast": Path("/work/.mirror/facebookresearch+SlowFast/repo"),
            "mvit": Path("/work/.mirror/facebookresearch+mvit/repo")}
_DIRS = {"slowfast": "SlowFast", "mvit": "mvit"}


def source_root(repo: str, tmp_root: Path) -> Path:
    """A folder with ``repo``'s package and configs, or a skip saying why there is none."""
    env = os.environ.get("MVIT_LAB_ORIGINALS")
    if env and (Path(env) / _DIRS[repo] / repo).is_dir():
        return Path(env) / _DIRS[repo]
    mirror = _MIRRORS[repo]
    if not mirror.is_dir():
        pytest.skip(f"the original {repo} sources are not here (set MVIT_LAB_ORIGINALS to a "
                    f"folder with {_DIRS[repo]}/{repo}); the synthetic tests cover CI")
    out = tmp_root / _DIRS[repo]
    if not (out / repo).is_dir():
        out.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", f"--git-dir={mirror}", "archive", "HEAD", repo,
                                  "configs"], capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
    return out


class _Stubs(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Any module under the given top-level names imports as an empty stub."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name.split(".")[0] in self.names:
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec: Any) -> types.ModuleType:
        module = types.ModuleType(spec.name)
        module.__path__ = []
        module.__getattr__ = _placeholder  # type: ignore[method-assign]
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        pass


def _placeholder(attr: str) -> Any:
    """Any name imported from a stub (a class the MViT code never instantiates)."""
    if attr.startswith("__"):
        raise AttributeError(attr)  # inspect and tracing look for __file__ and the like
    return object


def _package(name: str, path: Path) -> None:
    module = types.ModuleType(name)
    module.__path__ = [str(path)]
    sys.modules[name] = module


def _stub(name: str, **attrs: Any) -> None:
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    sys.modules[name] = module


def load_original(repo: str, tmp_root: Path) -> tuple[Any, Any, Path]:
    """``(MViT class, get_cfg, configs folder)`` of ``repo`` (``slowfast`` or ``mvit``)."""
    root = source_root(repo, tmp_root)
    pkg = root / repo
    if repo not in sys.modules or getattr(sys.modules[repo], "__path__", [None])[0] != str(pkg):
        for name in [n for n in sys.modules if n == repo or n.startswith(repo + ".")]:
            del sys.modules[name]
        if not any(isinstance(f, _Stubs) for f in sys.meta_path):
            sys.meta_path.insert(0, _Stubs(("pytorchvideo", "detectron2", "fairscale")))
        _package(repo, pkg)
        for sub in ("models", "utils", "config"):
            _package(f"{repo}.{sub}", pkg / sub)
        _stub(f"{repo}.utils.logging", get_logger=logging.getLogger)
        if repo == "slowfast":
            # ResNet normalisation helpers, imported at module level by the MViT builder
            _stub("slowfast.models.batchnorm_helper", __getattr__=_placeholder)
        else:
            _stub("mvit.utils.misc", validate_checkpoint_wrapper_import=lambda wrapper: None)
    if repo == "slowfast":
        model = importlib.import_module("slowfast.models.video_model_builder").MViT
    else:
        model = importlib.import_module("mvit.models.mvit_model").MViT
    get_cfg = importlib.import_module(f"{repo}.config.defaults").get_cfg
    return model, get_cfg, root / "configs"
