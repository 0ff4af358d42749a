"""Model families. Importing this package registers every model: each family module in this
folder is imported, in name order, so the registry's contents never depend on import order
elsewhere and a new family is one new file."""

import importlib
import pkgutil

from mnistbench.models.build import build_model, check_model_output
from mnistbench.models.lookup import (
    check_model_options,
    create_model,
    get_model_info,
    list_models,
    resolve_model,
)
from mnistbench.models.registry import ModelInfo, ModelSource, register_model, registered_model

_MACHINERY = {"build", "lookup", "outside", "registry"}  # modules here that hold no models

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    if _module not in _MACHINERY and not _module.startswith("_"):
        importlib.import_module(f"{__name__}.{_module}")

__all__ = [
    "ModelInfo",
    "ModelSource",
    "build_model",
    "check_model_options",
    "check_model_output",
    "create_model",
    "get_model_info",
    "list_models",
    "register_model",
    "registered_model",
    "resolve_model",
]
