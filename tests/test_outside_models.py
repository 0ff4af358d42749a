"""Models from outside the package: a file's function, a module's function, an installed
package's entry point; every bad input a clear ConfigError with nothing recorded."""

from __future__ import annotations

import hashlib
import textwrap
from pathlib import Path

import pytest

from mnistbench.cards import fingerprint_for
from mnistbench.engine import measure
from mnistbench.errors import ConfigError
from mnistbench.experiments import run_config, train_config
from mnistbench.experiments.configure import make_config
from mnistbench.models import list_models, resolve_model
from mnistbench.store import Store
from synthetic import learnable_raw

TINY = '''
from torch import nn


def tiny(num_classes=10, width=32):
    """MLP 784-width-classes, written outside mnistbench."""
    layers = [nn.Flatten(), nn.Linear(784, width), nn.ReLU(), nn.Linear(width, num_classes)]
    return nn.Sequential(*layers)
'''


def _write(folder: Path, name: str, source: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(source))
    return path


@pytest.fixture
def store(tmp_path: Path):
    with Store(tmp_path / "results.sqlite") as opened:
        yield opened


@pytest.fixture(autouse=True)
def _no_slow_latency(monkeypatch: pytest.MonkeyPatch) -> None:
    # latency at batch 1000 is the runner's, tested in test_runner
    monkeypatch.setattr(measure, "inference_latency_ms", lambda *args, **kwargs: 1.0)


def _run(store: Store, model: str, **overrides):
    settings = {"epochs": 1, "subset": 64, "val_size": 32, "batch_size": 32, **overrides}
    config = make_config(model, **settings)
    raw = learnable_raw(128, 64)
    return run_config(config, store, raw=raw, progress=False, measure_energy=False).record


def test_a_file_model_runs_end_to_end_and_its_card_says_where_it_came_from(
    tmp_path: Path, store: Store
) -> None:
    path = _write(tmp_path, "tiny.py", TINY)
    spec = f"{path}:tiny"
    record = _run(store, spec)
    assert record.status == "finished", record.error
    assert record.model == spec and record.metrics["params"] == 784 * 32 + 32 + 32 * 10 + 10
    assert [e["epoch"] for e in store.epochs(record.run_id)] == [1]
    trained = train_config(make_config(spec, epochs=1, subset=64, val_size=32),
                           raw=learnable_raw(128, 64), measure_energy=False)  # fmt: skip
    card = trained.model_card
    assert trained.status == "finished" and card["model"] == spec
    assert card["source"] == {
        "kind": "file",
        "spec": spec,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "distribution": None,
    }
    assert card["family"] == "outside" and card["recipe"]["of"] is None
    assert card["architecture"] == "MLP 784-width-classes, written outside mnistbench."
    assert card["recipe"]["stages"] == [
        {"name": "train", "kind": "cross_entropy", "epochs": None, "options": {}}
    ]
    assert card["published"] == [] and card["fingerprint"] == fingerprint_for(trained.config)


def test_factory_options_and_a_registered_recipe(tmp_path: Path, store: Store) -> None:
    spec = f"{_write(tmp_path, 'tiny.py', TINY)}:tiny"
    config = make_config(spec, recipe_of="cnn", model_options={"width": 8})
    cnn = make_config("cnn")
    assert config.recipe_of == "cnn" and (config.epochs, config.lr) == (cnn.epochs, cnn.lr)
    assert resolve_model(spec, "cnn").recipe is resolve_model("cnn").recipe
    record = _run(store, spec, recipe_of="cnn", model_options={"width": 8})
    assert record.status == "finished" and record.metrics["params"] == 784 * 8 + 8 + 8 * 10 + 10
    with pytest.raises(ConfigError, match="width is a whole number"):
        make_config(spec, model_options={"width": "wide"})
    # a registered model may borrow a recipe too
    assert make_config("mlp", recipe_of="cnn").batch_size == 64
    with pytest.raises(ConfigError, match=r"Unknown model 'cnm'.*Did you mean cnn"):
        make_config(spec, recipe_of="cnm")


def test_a_module_model(tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path, "tiny_nets.py", TINY)
    monkeypatch.syspath_prepend(str(tmp_path))
    info = resolve_model("tiny_nets:tiny")
    assert info.source.kind == "module" and info.source.spec == "tiny_nets:tiny"
    assert (
        info.source.sha256 == hashlib.sha256((tmp_path / "tiny_nets.py").read_bytes()).hexdigest()
    )
    assert _run(store, "tiny_nets:tiny").status == "finished"


def test_an_installed_package_publishes_models_by_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `pip install` leaves in site-packages: the module and a dist-info folder whose
    entry_points.txt names `tinyzoo = tinyzoo:tiny` in the group mnistbench.models."""
    site = tmp_path / "site"
    site.mkdir()
    _write(site, "tinyzoo.py", TINY)
    dist_info = site / "tinyzoo-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: tinyzoo\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text("[mnistbench.models]\ntinyzoo = tinyzoo:tiny\n")
    monkeypatch.syspath_prepend(str(site))
    listed = {info.name: info for info in list_models()}
    assert "tinyzoo" in listed and "mlp" in listed
    source = listed["tinyzoo"].source
    assert (source.kind, source.distribution) == ("entry_point", "tinyzoo==1.0")
    assert listed["tinyzoo"].family == "tinyzoo"
    config = make_config("tinyzoo", epochs=1, subset=64, val_size=32)
    trained = train_config(config, raw=learnable_raw(128, 64), measure_energy=False)
    assert trained.status == "finished", trained.error
    assert trained.model_card["source"]["distribution"] == "tinyzoo==1.0"


def test_editing_an_outside_model_changes_its_fingerprint(tmp_path: Path) -> None:
    path = _write(tmp_path, "tiny.py", TINY)
    before = fingerprint_for(make_config(f"{path}:tiny"))
    path.write_text(TINY.replace("nn.ReLU()", "nn.GELU()"))  # same shapes, other code
    after = fingerprint_for(make_config(f"{path}:tiny"))
    assert before != after
    assert fingerprint_for(make_config("mlp")) != fingerprint_for(make_config("cnn"))
    assert fingerprint_for(make_config("mlp")) == fingerprint_for(make_config("mlp", lr=0.5))


# ------------------------------------------------------------------------------- bad input


BAD_FILES = {
    "no_function.py": ("def other(num_classes=10):\n    return None\n", "has no function 'tiny'"),
    "raises.py": (
        "def tiny(num_classes=10):\n    raise RuntimeError('no GPU here')\n",
        "could not be built.*RuntimeError: no GPU here",
    ),
    "not_module.py": ("def tiny(num_classes=10):\n    return 42\n", "returned 'int', not a torch"),
    "wrong_shape.py": (
        "from torch import nn\n\ndef tiny(num_classes=10):\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(784, 3))\n",
        r"gave \(2, 3\).*\(batch, num_classes\) = \(2, 10\)",
    ),
    "no_num_classes.py": (
        "from torch import nn\n\ndef tiny():\n    return nn.Flatten()\n",
        "unexpected keyword argument 'num_classes'.*must take num_classes",
    ),
    "syntax.py": ("def tiny(num_classes=10)\n    pass\n", "Could not load .*SyntaxError"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_outside_models_are_config_errors_with_no_row(
    name: str, tmp_path: Path, store: Store
) -> None:
    source, message = BAD_FILES[name]
    path = _write(tmp_path, name, source)
    with pytest.raises(ConfigError, match=message):
        _run(store, f"{path}:tiny")
    assert store.list_runs() == []


def test_missing_file_and_module_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"No file .*nowhere\.py"):
        make_config(f"{tmp_path}/nowhere.py:tiny")
    with pytest.raises(ConfigError, match=r"No module 'no_such_package_x\.nets'"):
        make_config("no_such_package_x.nets:tiny")
    with pytest.raises(ConfigError, match=r"write an outside model as path/to/file\.py:function"):
        make_config("tiny.py:")


@pytest.mark.parametrize(
    ("model", "overrides", "message"),
    [
        ("cnn", {"image_size": 8}, r"cannot take a batch of shape \(2, 1, 8, 8\)"),
        ("mlp", {"image_size": 32}, r"cannot take a batch of shape \(2, 1, 32, 32\)"),
        ("resnet18", {"model_options": {"in_channels": 2}}, "in_channels=2"),
        (
            "svm_rbf",
            {"model_options": {"C": -1.0}, "val_size": 32},
            "Invalid model option for the rbf SVM: The 'C' parameter of SVC",
        ),
        ("svm_rbf", {"model_options": {"max_iter": "many"}, "val_size": 32}, "max_iter is"),
    ],
)
def test_registered_models_with_input_they_cannot_take(
    model: str, overrides: dict, message: str, store: Store
) -> None:
    """Before a row exists: an image size the model cannot take, or an option value its
    builder or library rejects (these ended in tracebacks before)."""
    settings = {"epochs": 1, "subset": 64, "val_size": 32, **overrides}
    with pytest.raises(ConfigError, match=message):
        _run(store, model, **settings)
    assert store.list_runs() == []


def test_a_recipe_the_model_cannot_run_is_refused_before_a_row(tmp_path: Path, store: Store):
    spec = f"{_write(tmp_path, 'tiny.py', TINY)}:tiny"
    with pytest.raises(ConfigError, match=r"'pretrain' stage .*needs the model to have head"):
        _run(store, spec, recipe_of="beta_vae")
    assert store.list_runs() == []
