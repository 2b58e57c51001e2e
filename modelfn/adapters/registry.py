"""Framework name -> adapter class, imported only when chosen.

The table holds dotted paths, not classes, so asking for one adapter never imports the others
(or their frameworks). Detection walks user-supplied adapters first, then this table in order;
the first whose ``detects`` says yes wins. A new framework is one module plus one line here.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelfn.errors import PackagingError

if TYPE_CHECKING:
    from modelfn.adapters.base import Adapter

ADAPTERS: dict[str, str] = {
    "onnx": "modelfn.adapters.onnx_file:OnnxFileAdapter",
    "xgboost": "modelfn.adapters.xgboost_trees:XGBoostAdapter",  # before sklearn: XGBModel is a BaseEstimator
    "lightgbm": "modelfn.adapters.lightgbm_trees:LightGBMAdapter",  # likewise LGBMModel
    "sklearn": "modelfn.adapters.scikit_learn:SklearnAdapter",
    "spark": "modelfn.adapters.spark_mllib:SparkMLlibAdapter",
    "torch": "modelfn.adapters.pytorch:PyTorchAdapter",
    "tensorflow": "modelfn.adapters.keras_tf:KerasTFAdapter",
    "mxnet": "modelfn.adapters.mxnet_symbol:MxnetSymbolAdapter",
    "custom": "modelfn.adapters.custom_code:CustomCodeAdapter",
}
"""Detection order matters: the more specific adapters come first."""


def supported() -> list[str]:
    """Framework names this build knows, in detection order."""
    return list(ADAPTERS)


def resolve(name_or_dotted: str) -> type[Adapter]:
    """The adapter class for a registry name or a ``pkg.mod:Class`` path."""
    dotted = ADAPTERS.get(name_or_dotted, name_or_dotted)
    if ":" not in dotted:
        raise PackagingError(
            f"unknown framework {name_or_dotted!r}; supported: {', '.join(supported())}, or an adapter 'pkg.mod:Class'",
            field="framework",
        )
    module_name, _, attr = dotted.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise PackagingError(f"cannot import adapter module {module_name!r}: {exc}", field="framework") from exc
    cls = getattr(module, attr, None)
    if not isinstance(cls, type):
        raise PackagingError(f"adapter {dotted!r}: {module_name} has no class {attr!r}", field="framework")
    for member in ("name", "detects", "load", "export", "native_predict"):
        if not hasattr(cls, member):
            raise PackagingError(
                f"adapter {dotted!r} lacks {member!r}; see modelfn.adapters.base.Adapter", field="framework"
            )
    adapter_cls: type[Adapter] = cls
    return adapter_cls


def get_adapter(name_or_dotted: str, options: Mapping[str, Any] | None = None) -> Adapter:
    """An adapter instance for a registry name (``sklearn``) or a dotted path (``pkg.mod:Class``)."""
    return instantiate(resolve(name_or_dotted), options)


def instantiate(cls: type[Adapter], options: Mapping[str, Any] | None = None) -> Adapter:
    """Build an adapter with its framework-specific options (CLI ``--option key=value``)."""
    try:
        return cls(**dict(options or {}))
    except TypeError as exc:
        raise PackagingError(
            f"adapter {cls.name!r} does not accept options {sorted(options or {})}: {exc}", field="option"
        ) from exc


def detect(
    model: Any, *, custom: Sequence[str | type[Adapter]] = (), options: Mapping[str, Any] | None = None
) -> Adapter:
    """The first adapter (custom ones first) that recognizes ``model``, an object or a file path."""
    target: Any = model
    if isinstance(model, str | os.PathLike):
        target = Path(model)
        if not target.exists():
            raise PackagingError(f"model file {target} does not exist", field="model")
    candidates: list[type[Adapter]] = [resolve(c) if isinstance(c, str) else c for c in custom]
    candidates += [resolve(name) for name in ADAPTERS]
    for cls in candidates:
        if cls.detects(target):
            return instantiate(cls, options)
    what = f"file {target.name!r}" if isinstance(target, Path) else f"object of type {_qualname(model)}"
    raise PackagingError(
        f"no adapter recognizes the {what}; supported frameworks: {', '.join(supported())}."
        " Pass framework=<name> (CLI: --framework) or an adapter 'pkg.mod:Class'",
        field="framework",
    )


def _qualname(obj: Any) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"
