"""Speedrun rules in code: the test set is sealed until the final score, rows land in the
store, the parameter track refuses models over budget, figures from two machines never share a
table; and torch.compile's warm-up is timed apart from training."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pytest
import torch

from mnistbench import recipes
from mnistbench.cli import main
from mnistbench.config import make_config
from mnistbench.data import SealedSplit, prepare_device_data, seal_test
from mnistbench.engine import evaluate, final_test, fit
from mnistbench.engine.compile import batch_sizes, compile_for_training
from mnistbench.errors import MnistbenchError, SealedTestSetError
from mnistbench.experiments import run_config
from mnistbench.models import create_model
from mnistbench.objectives import CrossEntropyObjective
from mnistbench.speedrun import (
    Trial,
    check_budget,
    model_parameters,
    pick_time_recipe,
    records_table,
    same_machine,
)
from mnistbench.store import Store
from synthetic import learnable_raw


def _sealed_data(val_size: int = 200):
    return seal_test(prepare_device_data(learnable_raw(), val_size=val_size), "a test run")


def _objective(model_name: str = "speedrun_fast_small"):
    torch.manual_seed(0)
    return CrossEntropyObjective(create_model(model_name))


def test_sealed_test_split_refuses_every_read_until_unsealed_once() -> None:
    data = _sealed_data()
    assert isinstance(data.test, SealedSplit) and len(data.test) == 300  # size is not a peek
    for read in (lambda: data.test.images, lambda: data.test.labels):
        with pytest.raises(SealedTestSetError, match="before the final score"):
            read()
    with pytest.raises(SealedTestSetError):
        evaluate(_objective(), data.test)  # type: ignore[arg-type]
    split = data.test.unseal()
    assert split.labels.shape == (300,) and data.test.labels is split.labels
    with pytest.raises(SealedTestSetError, match="already opened"):
        data.test.unseal()


def test_fit_that_tests_every_epoch_on_sealed_data_fails_loudly() -> None:
    config = make_config("speedrun_fast_small", epochs=1, val_size=200, batch_size=256)
    with pytest.raises(SealedTestSetError):
        fit(_objective(), _sealed_data(), config, progress=False, test_every_epoch=True)


def test_final_test_scores_once_into_the_last_epoch() -> None:
    config = make_config("speedrun_fast_small", epochs=2, val_size=200, batch_size=256)
    data, objective, seen = _sealed_data(), _objective(), []
    result = fit(objective, data, config, progress=False, test_every_epoch=False)
    assert all(r.test_accuracy is None for r in result.epochs)
    final_test(objective, data, result, on_epoch=seen.append)
    last = result.epochs[-1]
    assert last.test_accuracy is not None and result.last_test is not None
    assert seen == [last] and result.epochs[0].test_accuracy is None
    with pytest.raises(SealedTestSetError):
        final_test(objective, data, result)


def test_a_recipe_that_peeks_at_test_mid_training_fails_and_is_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def peeking(run: recipes.StageRun):
        objective = CrossEntropyObjective(run.model)

        def early_stop_on_test(record) -> None:  # what the rules forbid
            evaluate(objective, run.data.test)

        return fit(objective, run.data, run.config, on_epoch=early_stop_on_test, progress=False,
                   test_every_epoch=False)  # fmt: skip

    kind = dataclasses.replace(recipes.STAGE_KINDS["cross_entropy"], run=peeking)
    monkeypatch.setitem(recipes.STAGE_KINDS, "cross_entropy", kind)
    config = make_config("speedrun_fast_small", epochs=1, val_size=200)
    with Store(tmp_path / "s.sqlite") as store:
        with pytest.raises(SealedTestSetError):
            run_config(config, store, raw=learnable_raw(), progress=False, final_test_only=True,
                       measure_energy=False)  # fmt: skip
        (run,) = store.list_runs()
        assert run.status == "failed" and "SealedTestSetError" in (run.error or "")


def test_final_only_run_keeps_the_summary(tmp_path: Path) -> None:
    config = make_config("speedrun_fast_small", epochs=2, val_size=200)
    with Store(tmp_path / "s.sqlite") as store:
        record = run_config(config, store, raw=learnable_raw(), progress=False,
                            final_test_only=True, measure_energy=False).record  # fmt: skip
        epochs = store.epochs(record.run_id)
    m = record.metrics
    assert record.status == "finished" and m["test_protocol"] == "final_only"
    assert [e["test_accuracy"] is None for e in epochs] == [True, False]
    assert m["test_accuracy"] == epochs[-1]["test_accuracy"] > 0.5
    assert m["best_val_accuracy"] is not None and m["time_per_epoch_s"] > 0


def test_cli_speedrun_on_tiny_data_records_every_seed(
    capsys, learnable_data_dir: Path, tmp_path: Path
) -> None:
    store_path, json_path = tmp_path / "speed.sqlite", tmp_path / "figures.json"
    code = main(["speedrun", "--seeds", "2", "--target", "0.5", "--device", "cpu",
                 "--data-dir", str(learnable_data_dir), "--store", str(store_path), "--quiet",
                 "--set", "epochs=2", "--json", str(json_path)])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    assert "speedrun time track: speedrun_fast on mnist" in out and "2/2 seeds" in out
    assert "one-time costs: dataset load" in out and "| time | mnist |" in out
    figures = json.loads(json_path.read_text())
    accuracies = [t["test_accuracy"] for t in figures["trials"]]
    assert figures["seeds"] == 2 and figures["reached"] == 2 and figures["target_met"]
    assert figures["accuracy_mean"] == pytest.approx(sum(accuracies) / 2)
    assert all(t["train_time_s"] > 0 for t in figures["trials"])
    assert figures["table_row"][0] == "time" and figures["model"] == "speedrun_fast"
    with Store(store_path) as store:
        runs = store.list_runs()
        assert sorted(r.config["seed"] for r in runs) == [0, 1]
        for run in runs:
            assert run.status == "finished" and run.metrics["test_protocol"] == "final_only"
            tested = [e["test_accuracy"] is not None for e in store.epochs(run.run_id)]
            assert tested == [False, True]  # test scored once, at the end


def test_params_track_refuses_models_over_budget(capsys, learnable_data_dir: Path) -> None:
    argv = ["speedrun", "--track", "params", "--budget-params", "5000", "--model", "speedrun_fast"]
    code = main([*argv, "--data-dir", str(learnable_data_dir), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and "29,178 trainable parameters, over" in err and "5,000" in err
    with pytest.raises(MnistbenchError, match="budget of 4,000"):
        check_budget(make_config("speedrun_tiny"), 4_000)
    assert check_budget(make_config("speedrun_tiny"), 5_000) == 4_806


def test_recipes_and_reference_model() -> None:
    assert model_parameters("examples_cnn") == 1_199_882  # pytorch/examples mnist Net
    assert model_parameters("speedrun_tiny") <= 5_000
    assert pick_time_recipe("mnist", 0.985)[0] == 0.99
    with pytest.raises(MnistbenchError, match="No time-track recipe"):
        pick_time_recipe("mnist", 0.9999)


def test_figures_from_two_machines_never_share_a_table() -> None:
    trial = Trial(0, 1, "finished", 0.99, 1.0, None, 0.1, 0.1, 1, "cpu A, 2 cores")
    assert same_machine(["m", "m"]) == "m"
    with pytest.raises(MnistbenchError, match="different machines"):
        same_machine([trial.machine, "cpu B, 2 cores"])

    class Result:  # records_table reads only .machine before it refuses
        def __init__(self, machine: str):
            self.machine = machine

    with pytest.raises(MnistbenchError, match="different machines"):
        records_table([Result("cpu A"), Result("cpu B")])  # type: ignore[list-item]


def test_compile_batch_shapes() -> None:
    assert batch_sizes(1100, 256) == [256, 76]
    assert batch_sizes(512, 256) == [256]
    assert batch_sizes(100, 256) == [100]


# Inductor writes and builds C++ per graph: about 20-60 s on the 2-core CI machine, mostly
# one-time (cached in /tmp/torchinductor_*). Kept in the default run because it is the only
# check that --compile works end to end; the model is the smallest conv net we have.
def test_compile_warm_up_is_timed_apart_and_restores_the_model() -> None:
    torch.manual_seed(0)
    model = create_model("speedrun_fast_small")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    started = time.perf_counter()
    compiled, seconds = compile_for_training(model, (1, 28, 28), [8, 3], [5], "cpu")
    assert 0 < seconds <= time.perf_counter() - started
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BN stats restored too
    assert all(p.grad is None for p in model.parameters())
    x = torch.randn(8, 1, 28, 28)
    model.eval()
    torch.testing.assert_close(compiled(x), model(x), rtol=1e-4, atol=1e-4)
    # two training steps through the recipe, compile time recorded apart from epoch time
    config = make_config("speedrun_fast_small", epochs=1, val_size=8, subset=16, batch_size=8,
                         compile=True)  # fmt: skip
    data = prepare_device_data(learnable_raw(), val_size=8, subset=16)
    ctx = recipes.RecipeContext(create_model("speedrun_fast_small"), data, config,
                                on_epoch=lambda r: None, add_artefact=lambda *a: None,
                                progress=False)  # fmt: skip
    result = recipes.run_recipe(ctx, recipes.SUPERVISED)
    assert result.status == "finished"
    assert ctx.metrics["compile_time_s"] > 0
    assert dataclasses.asdict(result.epochs[0])["train_time_s"] > 0
