"""Every registered model runs its recipe: two steps per stage on tiny data, rows in a store.

Parametrized over the registry, so a model is covered the moment it is registered. Stage
budgets fixed by a recipe (a probe's 10 epochs, 5 CD epochs per RBM) are cut to one epoch of
two batches; what is tested is that every stage runs and lands, not what it learns.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from mnistbench.engine import measure
from mnistbench.errors import ConfigError
from mnistbench.experiments import run_config
from mnistbench.experiments.configure import make_config
from mnistbench.models import get_model_info, list_models, registry
from mnistbench.recipes import STAGE_KINDS, Recipe, Stage, StageKind, register_stage_kind
from mnistbench.store import Store
from synthetic import learnable_raw

BATCH = 8  # images per step: subset 2 * BATCH gives two steps per epoch


def _one_epoch_stages(recipe: Recipe) -> Recipe:
    def short(stages: tuple[Stage, ...]) -> tuple[Stage, ...]:
        return tuple(replace(s, epochs=1 if s.epochs else None) for s in stages)

    variants = {value: short(stages) for value, stages in recipe.variants.items()}
    return replace(recipe, stages=short(recipe.stages), variants=variants)


@pytest.mark.parametrize("name", [info.name for info in list_models()])
def test_every_recipe_runs_two_steps_and_lands(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    info = get_model_info(name)
    monkeypatch.setitem(
        registry._REGISTRY, name, replace(info, recipe=_one_epoch_stages(info.recipe))
    )
    # latency at batch 1000 is the runner's, tested in test_runner; here it would cost minutes
    monkeypatch.setattr(measure, "inference_latency_ms", lambda *args, **kwargs: 1.0)
    # native 28 x 28 images: study C's 64 x 64 ResNets cost minutes on a busy 2-core machine
    config = make_config(
        name, epochs=1, batch_size=BATCH, subset=2 * BATCH, val_size=BATCH, image_size=28
    )
    with Store(tmp_path / "results.sqlite") as store:
        raw = learnable_raw(64, 32)
        record = run_config(config, store, raw=raw, progress=False, measure_energy=False).record
        assert record.status == "finished", record.error
        epochs = store.epochs(record.run_id)
    stages = get_model_info(name).recipe.stages_for({})
    recording = [s.name for s in stages if STAGE_KINDS[s.kind].records_epochs]
    assert [e["epoch"] for e in epochs] == list(range(1, len(recording) + 1))
    if len(recording) > 1:  # a staged recipe names each row's stage, in order
        assert [e["stage"] for e in epochs] == recording
    else:
        assert "stage" not in epochs[0]
    assert epochs[-1]["test_accuracy"] is not None  # the last labelled stage was scored
    assert record.metrics["epochs_completed"] == 1
    assert record.metrics["test_accuracy"] == epochs[-1]["test_accuracy"]


def test_stage_kinds_are_extensible_by_registration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new kind of stage is a registration, not an edit of the runner."""
    calls = []

    def noted(run):
        calls.append((run.stage.name, run.test, dict(run.options)))
        return STAGE_KINDS["cross_entropy"].run(run)

    kind = register_stage_kind(StageKind("noted_cross_entropy", noted, labelled=True))
    try:
        with pytest.raises(ValueError, match="registered twice"):
            register_stage_kind(kind)
        info = get_model_info("mlp")
        recipe = Recipe(stages=(Stage("train", kind.name),), defaults=info.recipe.defaults)
        monkeypatch.setitem(registry._REGISTRY, "mlp", replace(info, recipe=recipe))
        monkeypatch.setattr(measure, "inference_latency_ms", lambda *args, **kwargs: 1.0)
        config = make_config("mlp", epochs=1, subset=32, val_size=16)
        with Store(tmp_path / "results.sqlite") as store:
            record = run_config(config, store, raw=learnable_raw(64, 32), progress=False,
                                measure_energy=False).record  # fmt: skip
    finally:
        del STAGE_KINDS[kind.name]
    assert record.status == "finished" and calls == [("train", "every_epoch", {})]


@pytest.mark.parametrize(
    ("model", "scored"),
    [("dbn", "finetune"), ("beta_vae", "probe"), ("simsiam_lgbm", "probe"), ("svm_rbf", None)],
)
def test_sealed_test_is_opened_once_by_the_last_labelled_stage_only(
    model: str, scored: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The test policy is the runner's, for every recipe: with a sealed test (records), an
    earlier labelled stage (the improved DBN's probe) sees no test at all, and the last labelled
    stage scores the finished model once (a probe: on test features extracted only then)."""
    info = get_model_info(model)
    monkeypatch.setitem(
        registry._REGISTRY, model, replace(info, recipe=_one_epoch_stages(info.recipe))
    )
    monkeypatch.setattr(measure, "inference_latency_ms", lambda *args, **kwargs: 1.0)
    options = {"variant": "improved"} if model == "dbn" else None  # the one with a probe
    config = make_config(model, epochs=1, batch_size=BATCH, subset=2 * BATCH, val_size=BATCH,
                         model_options=options)  # fmt: skip
    with Store(tmp_path / "results.sqlite") as store:
        record = run_config(config, store, raw=learnable_raw(64, 32), progress=False,
                            measure_energy=False, final_test_only=True).record  # fmt: skip
        assert record.status == "finished", record.error
        epochs = store.epochs(record.run_id)
    tested = [e.get("stage") for e in epochs if e["test_accuracy"] is not None]
    assert tested == [scored] and epochs[-1].get("stage") == scored
    assert record.metrics["test_protocol"] == "final_only"
    assert record.metrics["test_accuracy"] == epochs[-1]["test_accuracy"]
    if model == "dbn":
        assert record.metrics["probe_test_accuracy"] is None  # the probe never saw the test


@pytest.mark.parametrize(
    ("model", "option", "message"),
    [
        ("beta_vae", "beta=abc", "beta is a number .*e.g. --model-option beta=4.0"),
        ("simsiam_lgbm", "probe=svm", "choose one of lightgbm, linear"),
        ("simsiam_lgbm", "lgbm_train_size=2.5", "lgbm_train_size is a whole number"),
        ("snn", "time_steps=abc", "time_steps is a whole number.*time_steps=25"),
        ("beta_vae", "probe=linear", "has no option probe.*It takes: beta"),
    ],
)
def test_option_values_are_checked_with_their_type(model: str, option: str, message: str):
    from mnistbench.config import parse_model_option

    key, value = parse_model_option(option)
    with pytest.raises(ConfigError, match=message):
        make_config(model, model_options={key: value})


def test_importing_and_running_a_recipe_loads_no_plotting(tmp_path: Path) -> None:
    """Training stores its pictures and spike trains as data; report/ draws them. A run (here
    a spiking one and a pretrained one, both of which store artefacts) must not load
    matplotlib or the report package."""
    script = f"""
import sys
from dataclasses import replace
sys.path.insert(0, {str(Path(__file__).parent)!r})
from synthetic import learnable_raw
from mnistbench.experiments.configure import make_config
from mnistbench.engine import measure
from mnistbench.experiments import run_config
from mnistbench.store import Store
measure.inference_latency_ms = lambda *args, **kwargs: 1.0
with Store({str(tmp_path / "s.sqlite")!r}) as store:
    for name, options in (("snn", {{"time_steps": 2}}), ("beta_vae", {{}})):
        config = make_config(name, epochs=1, batch_size=8, subset=16, val_size=8,
                             model_options=options)
        record = run_config(config, store, raw=learnable_raw(64, 32), progress=False,
                                   measure_energy=False).record
        assert record.status == "finished", record.error
    kinds = sorted({{a.kind for r in store.list_runs() for a in store.artefacts(r.run_id)}})
loaded = sorted(m for m in sys.modules if m.startswith(("matplotlib", "mnistbench.report")))
print(__import__("json").dumps({{"loaded": loaded, "kinds": kinds}}))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    # pictures, confusion matrices, per-image predictions (issue 24), spike trains
    assert result["kinds"] == ["json", "png", "predictions", "spike_trains"]
    assert result["loaded"] == []
