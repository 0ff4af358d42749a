"""Models from outside the package: a file's function, a module's function, an installed
package's entry point (group `mnistbench.models`), each turned into a ModelInfo.

A factory takes `num_classes` (and optionally keyword options, `--model-option`) and returns
an nn.Module. Its ModelInfo records where it came from (the spec, the sha256 of its source
file, the distribution of an entry point) for the run's model card. A file is executed once
per process and content: the same spec with the same source reuses the loaded module.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.metadata
import importlib.util
import inspect
import re
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

from torch import nn

from mnistbench.errors import ConfigError
from mnistbench.models.registry import ModelInfo, ModelSource
from mnistbench.recipes import SUPERVISED

ENTRY_POINT_GROUP = "mnistbench.models"
OUTSIDE_FAMILY = "outside"

_FILE_MODULES: dict[tuple[str, str], object] = {}  # (resolved path, sha256) -> module
_ENTRY_POINTS: dict[tuple[str, str, str], ModelInfo] = {}  # (name, value, dist) -> info


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _architecture(factory: Callable[..., object], spec: str) -> str:
    """The first line of the factory's docstring, else where it came from."""
    doc = inspect.getdoc(factory)
    first = doc.strip().splitlines()[0] if doc and doc.strip() else ""
    return first or f"{getattr(factory, '__name__', 'factory')} from {spec}"


def _info(
    spec: str,
    factory: Callable[..., nn.Module],
    source: ModelSource,
    recipe: ModelInfo | None,
    family: str = OUTSIDE_FAMILY,
) -> ModelInfo:
    if not callable(factory):
        raise ConfigError(
            f"Model {spec}: {type(factory).__name__} object is not a function. Name a function "
            "that takes num_classes and returns an nn.Module."
        )
    return ModelInfo(
        name=spec,
        family=family,
        architecture=_architecture(factory, spec),
        builder=factory,
        recipe=recipe.recipe if recipe is not None else SUPERVISED,
        tags=("outside",),
        input_scaling=recipe.input_scaling if recipe is not None else "standard",
        source=source,
        recipe_of=recipe.name if recipe is not None else None,
    )


def _factory(module: object, name: str, where: str, spec: str) -> Callable[..., nn.Module]:
    if not hasattr(module, name):
        defined = sorted(
            n
            for n, value in vars(module).items()
            if inspect.isfunction(value) and value.__module__ == getattr(module, "__name__", None)
        )
        listed = f" It defines: {', '.join(defined)}." if defined else " It defines no function."
        raise ConfigError(
            f"{where} has no function {name!r} (model {spec}).{listed} Write the model as "
            f"`{where}:FUNCTION`, FUNCTION taking num_classes and returning an nn.Module."
        )
    return getattr(module, name)


# -------------------------------------------------------------------------------- file specs


def _load_file(path: Path, sha256: str) -> object:
    key = (str(path.resolve()), sha256)
    if key in _FILE_MODULES:
        return _FILE_MODULES[key]
    stem = re.sub(r"\W", "_", path.stem)
    name = f"mnistbench_outside_{stem}_{sha256[:12]}"
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise ConfigError(f"Cannot load {path} as Python: give a .py file.")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module  # dataclasses and pickling look the module up by name
    folder = str(path.resolve().parent)
    if folder not in sys.path:
        sys.path.append(folder)  # like running the file: its sibling modules import
    try:
        module_spec.loader.exec_module(module)
    except (Exception, SystemExit, KeyboardInterrupt) as error:
        del sys.modules[name]
        raise ConfigError(_load_failure(path, error)) from None
    _FILE_MODULES[key] = module
    return module


def _load_failure(path: Path, error: BaseException) -> str:
    """The paragraph for a model file that failed while it ran at import; nothing was trained
    or recorded yet. sys.exit() and KeyboardInterrupt in the file are named as what they are,
    not passed on (they would end mnistbench without a word, or claim a run was interrupted)."""
    after = " Nothing was trained or recorded."
    if isinstance(error, SystemExit):
        return (
            f"Loading the model file {path} ended the program: it calls sys.exit({error.code!r}) "
            "(or exit()) when imported. mnistbench imports the file to find the factory, so "
            'code meant for `python file.py` must sit under `if __name__ == "__main__":`.' + after
        )
    if isinstance(error, KeyboardInterrupt):
        return (
            f"Loading the model file {path} was interrupted (KeyboardInterrupt while the file "
            "ran at import: Ctrl-C, or the file raises it)." + after
        )
    return (
        f"Could not load {path}: {type(error).__name__}: {error}. Fix the file, or run it "
        f"with `python {path}` to see the full traceback." + after
    )


def _guarded(factory: Callable[..., nn.Module], spec: str) -> Callable[..., nn.Module]:
    """The factory, with sys.exit() inside it turned into a ConfigError naming the model."""
    if not callable(factory):
        return factory  # _info says it is not a function

    @functools.wraps(factory)
    def build(*args: object, **kwargs: object) -> nn.Module:
        try:
            return factory(*args, **kwargs)
        except SystemExit as error:
            raise ConfigError(
                f"Model {spec}: its factory called sys.exit({error.code!r}) instead of returning "
                "an nn.Module. Return the model, or raise an exception that says what is wrong."
            ) from None

    return build


def load_spec(spec: str, recipe: ModelInfo | None) -> ModelInfo:
    """`path/to/file.py:factory` or `package.module:factory` as a ModelInfo."""
    where, _, function = spec.rpartition(":")
    if not where or not function.isidentifier():
        raise ConfigError(
            f"Invalid model {spec!r}: write an outside model as path/to/file.py:function or "
            "package.module:function (the function takes num_classes, returns an nn.Module)."
        )
    if where.endswith(".py") or "/" in where or "\\" in where:
        path = Path(where).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"No file {path} (model {spec}, looked for from {Path.cwd()}). Give the path of "
                "a Python file and the function in it: path/to/my_nets.py:tiny."
            )
        sha256 = _sha256(path)
        module = _load_file(path, sha256)
        source = ModelSource("file", spec, sha256)
        factory = _guarded(_factory(module, function, str(path), spec), spec)
        return _info(spec, factory, source, recipe)
    try:
        module = importlib.import_module(where)
    except ModuleNotFoundError as error:
        raise ConfigError(
            f"No module {where!r} for model {spec} ({error}). Install its package, put its "
            "folder on PYTHONPATH, or give a file path: path/to/file.py:function."
        ) from None
    except (Exception, SystemExit, KeyboardInterrupt) as error:
        raise ConfigError(
            _load_failure(Path(where), error).replace("the model file", "the module")
        ) from None
    file = getattr(module, "__file__", None)
    source = ModelSource("module", spec, _sha256(Path(file)) if file else None)
    return _info(spec, _guarded(_factory(module, function, where, spec), spec), source, recipe)


# ------------------------------------------------------------------------------ entry points


def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def _load_entry_point(ep: importlib.metadata.EntryPoint, recipe: ModelInfo | None) -> ModelInfo:
    dist = f"{ep.dist.name}=={ep.dist.version}" if ep.dist is not None else None
    key = (ep.name, ep.value, f"{dist}/{recipe.name if recipe else ''}")
    if key in _ENTRY_POINTS:
        return _ENTRY_POINTS[key]
    try:
        factory = ep.load()
    except Exception as error:
        raise ConfigError(
            f"Model {ep.name} (entry point {ep.value} of {dist or 'an installed package'}) "
            f"could not be loaded: {type(error).__name__}: {error}"
        ) from None
    file = getattr(sys.modules.get(ep.module), "__file__", None)
    source = ModelSource("entry_point", ep.name, _sha256(Path(file)) if file else None, dist)
    family = ep.dist.name if ep.dist is not None else OUTSIDE_FAMILY
    info = _info(ep.name, factory, source, recipe, family)
    _ENTRY_POINTS[key] = info
    return info


def entry_point_model(name: str, recipe: ModelInfo | None) -> ModelInfo | None:
    """The model an installed package publishes as `name`, or None."""
    ep = _entry_points().get(name)
    return _load_entry_point(ep, recipe) if ep is not None else None


def entry_point_models(skip: set[str]) -> list[ModelInfo]:
    """Every model installed packages publish (names in `skip` left out: a registered name
    wins); one that fails to load is left out with a warning naming it."""
    infos = []
    for name, ep in sorted(_entry_points().items()):
        if name in skip:
            warnings.warn(
                f"entry point {name} ({ep.value}) is shadowed by a registered model", stacklevel=2
            )
            continue
        try:
            infos.append(_load_entry_point(ep, None))
        except ConfigError as error:
            warnings.warn(str(error), stacklevel=2)
    return infos
