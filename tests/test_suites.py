"""Suites: each published study as a plan file in the sweep format; missing models are skipped
and named; runs resume."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from mnistbench.cli import main
from mnistbench.errors import ConfigError
from mnistbench.experiments import suites
from mnistbench.experiments.plan import unique_trials
from mnistbench.experiments.suites import get_suite, plan_suite, suite_runs
from mnistbench.experiments.sweeps import keep_models, load_sweep, plan_sweep
from mnistbench.store import Store

REPO = Path(__file__).resolve().parent.parent
STUDY_A = ["microresnet", "cnn", "snn", "dbn", "simsiam_lgbm", "mlp", "vit", "gan", "unet",
           "beta_vae"]  # fmt: skip
TINY = """
[suite]
name = "tiny"
version = "7"
study = "A"
description = "two small models and a missing one"
missing_models = "skip"

[[entries]]
model = "mlp"

[[entries]]
model = "not_registered_yet"

[[entries]]
model = "cnn"
label = "sgd"
optimizer = "sgd"
"""


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def tiny_suite(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> suites.Suite:
    """A suite file with two small models and one that is not registered."""
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    suite = load_sweep(path)
    monkeypatch.setitem(suites.SUITES, "tiny", suite)
    return suite


def test_every_published_study_is_a_suite() -> None:
    assert set(suites.SUITES) == {
        "architecture-showdown", "efficiency-showdown", "resnet-svm", "cpu-vs-gpu",
        "small-cnn-ablation", "parameter-diet",
        # the suites behind the committed tables (docs/results.md)
        "reproduction", "study-protocol", "improved", "study-a-60k", "zoo-variants",
        # issue 28: every study A, D and E model, weights kept and evaluated
        "robustness",
    }  # fmt: skip
    robustness = get_suite("robustness")
    assert robustness.evaluate == ("corruptions", "calibration", "adversarial")
    assert robustness.seeds == 3
    study_d, study_e = get_suite("small-cnn-ablation"), get_suite("parameter-diet")
    assert set(robustness.models) == {*STUDY_A, *study_d.models, *study_e.models}
    assert len(robustness.models) == 17
    assert get_suite("architecture-showdown").models == STUDY_A
    assert get_suite("efficiency-showdown").models == [
        "mlp_784_512", "cnn_small", "rnn_rows", "snn_single_step",
    ]  # fmt: skip
    for suite in suites.list_suites():
        assert suite.kind == "suite" and suite.version and suite.study in "ABCDE"
        # size() is the configurations a seed on one device: what two seeds plan, halved
        planned = plan_suite(suite, device="cpu", seeds=2).trials
        assert len(planned) == 2 * suite.size() > 0, suite.name
        assert len({t.config_hash for t in planned}) == len(planned), suite.name


# sha256 of [label, config hash, membership tag] of every trial, as the suites planned them when
# they were Python (commit 5ae60b7), with --epochs 1 --subset 2000 --seeds 2 --seed 3 on the
# CPU: the plan files must plan the very same trials, so stored runs keep matching them. Two
# changed on purpose with issue 25's study recipes (was architecture-showdown f74f170443fe0848,
# small-cnn-ablation bba5479b5a17b565): MicroResNet's, the DBN's and SimSiam's recipes state
# their new options, and study D's augmentation is study_d_torchvision, so their trials are new
# configurations; the runs recorded before keep their hashes and are labelled earlier recipes.
# resnet-svm (was 94afe905c0684ddb) changed with issue 31 in its labels alone: a label now says
# the command line's settings ("1 epochs" under --epochs 1); config hashes and tags apart from
# the label are unchanged (their digest is 31c66dd2a40358ad before and after).
PLANNED_AT_5AE60B7 = {
    "architecture-showdown": "14b5c5030d372482",
    "efficiency-showdown": "7508b952d7f7c6ae",
    "resnet-svm": "64b7cbfe08b02259",
    "cpu-vs-gpu": "0614517d5e40edf4",
    "small-cnn-ablation": "03a2f0f3bc9caedb",
    "parameter-diet": "bff934d598127975",
}


@pytest.mark.parametrize("name", sorted(PLANNED_AT_5AE60B7))
def test_suite_files_plan_the_trials_the_python_suites_planned(name: str) -> None:
    plan = plan_suite(get_suite(name), device="cpu", epochs=1, subset=2000, seeds=2, first_seed=3)
    trials = [[t.label, t.config_hash, list(t.tag)] for t in plan.trials]
    digest = hashlib.sha256(json.dumps(trials).encode()).hexdigest()[:16]
    assert digest == PLANNED_AT_5AE60B7[name]


def test_the_reproduction_suite_runs_every_study_row_at_three_seeds() -> None:
    """Every published figure of studies A, B, D and E and study C's SVMs (both datasets) has
    a trial at exactly its setting, with the very config hash `mnistbench run MODEL --seed N`
    gives, so runs made either way (and committed in results/) count for the other."""
    from mnistbench.experiments.configure import make_config
    from mnistbench.studies import FIGURES, setting_differences

    plan = plan_suite(get_suite("reproduction"), device="cpu")
    wanted = [f for f in FIGURES if f.study in "ABDE" or f.model.startswith("svm")]
    for figure in wanted:
        seeds = sorted(
            t.config.seed for t in plan.trials
            if (t.config.model, t.config.dataset) == (figure.model, figure.dataset)
            and not setting_differences(figure.setting, t.config.to_dict())
        )  # fmt: skip
        assert seeds == [0, 1, 2], (figure.model, figure.dataset)
    first = plan.trials[0]
    assert first.config_hash == make_config(first.config.model, device="cpu").config_hash()


def test_the_improved_suite_changes_the_recipe_not_the_architecture() -> None:
    from mnistbench.experiments.configure import make_config

    plan = plan_suite(get_suite("improved"), device="cpu")
    assert {t.config.model for t in plan.trials} == {"mlp", "cnn", "microresnet", "dbn"}
    for trial in plan.trials:
        recipe = make_config(trial.config.model, device="cpu")
        if trial.config.model == "dbn":  # the earlier DBN recipe: its stages, clipping
            assert trial.config.options() == {"variant": "improved"} != recipe.options()
            assert trial.config.grad_clip == 1.0 and recipe.grad_clip is None
            continue
        assert trial.config.scheduler == "onecycle" != recipe.scheduler
        assert trial.config.epochs > recipe.epochs


def test_unregistered_models_are_skipped_and_named(tiny_suite) -> None:
    plan = plan_suite(tiny_suite, device="cpu")
    assert plan.skipped_models == ["not_registered_yet"]
    assert [t.config.model for t in plan.trials] == ["mlp", "cnn"]
    assert plan.trials[1].config.optimizer == "sgd"  # the entry's override beats the recipe
    assert [t.label for t in plan.trials] == ["", "sgd"]


def test_keep_models_returns_a_copy_and_leaves_the_plan_whole(tiny_suite) -> None:
    plan = plan_suite(tiny_suite, device="cpu")
    kept = keep_models(plan, ["cnn"])
    assert [t.config.model for t in kept.trials] == ["cnn"]
    assert [t.config.model for t in plan.trials] == ["mlp", "cnn"]  # not filtered in place
    assert kept.skipped_models == plan.skipped_models == ["not_registered_yet"]


def test_seeds_and_scale_knobs(tiny_suite) -> None:
    plan = plan_suite(tiny_suite, seeds=3, first_seed=5, epochs=1, subset=300, device="cpu")
    assert [(t.config.model, t.config.seed) for t in plan.trials] == [
        ("mlp", 5), ("mlp", 6), ("mlp", 7), ("cnn", 5), ("cnn", 6), ("cnn", 7),
    ]  # fmt: skip
    assert {(t.config.epochs, t.config.subset) for t in plan.trials} == {(1, 300)}
    assert len({t.config_hash for t in plan.trials}) == 6
    name, content = plan.trials[0].tag
    assert name == "suite:tiny"
    assert json.loads(content)["version"] == "7"
    with pytest.raises(ConfigError, match="--seeds"):
        plan_suite(tiny_suite, seeds=0)


def test_models_keeps_only_those_trials_and_names_the_suites_models(capsys) -> None:
    """`--models` runs the rows a table still misses: the same trials (same config hashes) as the
    whole suite plans for those models, in the suite's order, and nothing else."""
    whole = plan_suite(get_suite("reproduction"), device="cpu")
    code, out, _ = run_cli(
        capsys, "suite", "reproduction", "--models", "vit,snn", "--plan", "--device", "cpu"
    )
    assert code == 0
    rows = [
        line.split(" | ")
        for line in out.splitlines()
        if line.startswith("| ") and "---" not in line
    ]
    kept = [(row[1], row[-1].rstrip(" |")) for row in rows[1:]]
    expected = [
        (t.config.model, t.config_hash) for t in whole.trials if t.config.model in ("snn", "vit")
    ]
    assert kept == expected and len(kept) == 6
    code, _, err = run_cli(capsys, "suite", "reproduction", "--models", "vit,resnet", "--plan")
    assert code == 2
    assert "Invalid --models resnet: reproduction trains no such model" in err
    assert "resnet18, resnet50" in err and "Traceback" not in err


def test_study_c_grid_is_32_configs_plus_svms_and_merges_under_epochs_knob() -> None:
    suite = get_suite("resnet-svm")
    plan = plan_suite(suite, device="cpu")
    grid = [t for t in plan.trials if t.config.model.startswith("resnet")]
    assert len({t.config_hash for t in grid}) == len(grid) == 32
    assert {(t.config.batch_size, t.config.image_size) for t in grid} == {(16, 64)}
    assert {t.config.dataset for t in plan.trials} == {"mnist", "fashion-mnist"}
    assert [t.label for t in plan.trials[:2]] == ["sgd lr=1e-3 3 epochs", "sgd lr=1e-3 5 epochs"]
    # --epochs 1 makes the 3- and 5-epoch entries identical: the driver merges them
    quick = plan_suite(suite, epochs=1, device="cpu")
    kept, merged = unique_trials(quick.trials)
    assert merged == 16 and len(kept) == len(quick.trials) - 16


def test_a_cell_picked_on_the_command_line_is_labelled_and_planned_as_it_runs(
    capsys, tmp_path: Path
) -> None:
    """Study C's cells are picked by settings (docs/results.md): every grid entry becomes the one
    config, and each trial's label and the plan say that config, not the entry it came from."""
    plan = plan_suite(get_suite("resnet-svm"), device="cpu", epochs=5,
                      overrides={"dataset": "mnist", "optimizer": "adam", "lr": 1e-3})  # fmt: skip
    grid = [t for t in plan.trials if t.config.model == "resnet18"]
    assert len(grid) == 16 and {t.label for t in grid} == {"adam lr=1e-3 5 epochs"}
    assert {(t.config.optimizer, t.config.lr, t.config.epochs) for t in grid} == {("adam", 1e-3, 5)}
    code, out, _ = run_cli(
        capsys, "suite", "resnet-svm", "--models", "resnet18", "--device", "cpu", "--dataset",
        "mnist", "--epochs", "5", "--optimizer", "adam", "--lr", "1e-3", "--plan", "--store",
        str(tmp_path / "none.sqlite"),
    )  # fmt: skip
    assert code == 0
    assert "| 1 | resnet18 | mnist | adam lr=1e-3 5 epochs | 0 | 5 | cpu | to run |" in out
    assert "| 2 |" not in out and "15 trial(s) merged" in out
    assert f"1 trial(s) to run (no store at {tmp_path / 'none.sqlite'} yet)" in out
    assert not (tmp_path / "none.sqlite").exists()  # planning creates no store


def test_the_shipped_resnet_sweep_is_the_suites_grid() -> None:
    # one study C grid, written twice in one format: the sweep file for `mnistbench sweep`,
    # the suite for `mnistbench suite`; both must plan the same 32 configs
    sweep = plan_sweep(load_sweep(REPO / "sweeps" / "resnet-grid.toml"), device="cpu")
    suite = plan_suite(get_suite("resnet-svm"), device="cpu")
    grid = [t.config_hash for t in suite.trials if t.config.model.startswith("resnet")]
    assert [t.config_hash for t in sweep.trials] == grid


def test_cpu_vs_gpu_runs_on_every_present_device() -> None:
    suite = get_suite("cpu-vs-gpu")
    plan = plan_suite(suite)
    assert plan.devices == suites.present_devices() and plan.devices[0] == "cpu"
    assert len(plan.trials) == 2 * len(plan.devices)
    assert plan.trials[0].label == "224x224 cpu"
    for trial in plan.trials:
        c = trial.config
        assert (c.dataset, c.image_size, c.batch_size, c.epochs, c.lr) == (
            "fashion-mnist", 224, 16, 1, 1e-3,
        )  # fmt: skip


def test_unknown_suite_suggests_the_closest() -> None:
    with pytest.raises(ConfigError, match="Did you mean architecture-showdown"):
        get_suite("architecture-shodown")


def test_suite_list_describes_every_suite(capsys) -> None:
    code, out, _ = run_cli(capsys, "suite", "--list")
    assert code == 0
    for name in suites.SUITES:
        assert f"| {name} |" in out
    assert "| resnet-svm | 1 | study C | 36 | 4/4 |" in out  # 32 grid configs + 4 SVMs


def test_list_shows_suites(capsys) -> None:
    code, out, _ = run_cli(capsys, "list")
    assert code == 0 and "| architecture-showdown | 1 | study A |" in out


def test_suite_runs_records_and_resumes(
    capsys, tiny_suite, learnable_data_dir: Path, tmp_path: Path
) -> None:
    store_path = tmp_path / "s.sqlite"
    args = ("suite", "tiny", "--seeds", "2", "--epochs", "1", "--val-size", "100", "--subset",
            "300", "--data-dir", str(learnable_data_dir), "--store", str(store_path),
            "--quiet")  # fmt: skip
    code, out, err = run_cli(capsys, *args)
    assert code == 0, err
    assert "skipping not_registered_yet" in err
    lines = [line for line in out.splitlines() if line.startswith("[")]
    assert len(lines) == 4 and all(" done " in line for line in lines)
    assert "±" in out  # two seeds: mean ± std
    assert "scaled: epochs=1" in out and "| recipe |" not in out  # a quick look is no recipe
    with Store(store_path) as store:
        runs = store.list_runs()
        assert len(runs) == 4 and {r.status for r in runs} == {"finished"}
        assert {r.run_id for r in suite_runs(store, "tiny")} == {r.run_id for r in runs}
    code, out, _ = run_cli(capsys, *args)  # a second time: everything is already there
    lines = [line for line in out.splitlines() if line.startswith("[")]
    assert code == 0 and len(lines) == 4 and all(" skipped " in line for line in lines)
    assert "tiny v7: 4 skipped" in out
    assert "measured on" not in out  # this machine measured them
    with Store(store_path) as store:
        assert len(store.list_runs()) == 4
        stored_ids = sorted(r.run_id for r in store.list_runs())
    # --plan with a third seed: the four stored trials name their runs, the two new ones are left
    code, out, _ = run_cli(capsys, *args[:2], "--seeds", "3", *args[4:], "--plan")
    rows = [line for line in out.splitlines() if line.startswith("| ") and "---" not in line][1:]
    named = sorted(int(row.split("| run ")[1].split()[0]) for row in rows if "| run " in row)
    assert code == 0 and len(rows) == 6 and named == stored_ids
    assert sum("| to run |" in row for row in rows) == 2
    assert f"2 of 6 trial(s) to run; 4 finished in {store_path}" in out


def test_suite_plan_and_dry_run_record_nothing(
    capsys, tiny_suite, learnable_data_dir: Path, tmp_path: Path
) -> None:
    store_path = tmp_path / "s.sqlite"
    code, out, _ = run_cli(capsys, "suite", "tiny", "--plan", "--store", str(store_path))
    assert code == 0 and "| 1 | mlp | mnist | recipe | 0 |" in out
    code, out, _ = run_cli(
        capsys, "suite", "tiny", "--dry-run", "--quiet", "--data-dir", str(learnable_data_dir),
        "--store", str(store_path),
    )  # fmt: skip
    assert code == 0 and "2 done; nothing recorded" in out
    assert not store_path.exists()


def test_a_suite_file_of_your_own(capsys, tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(TINY.replace('name = "tiny"', 'name = "mine"'))
    code, out, err = run_cli(capsys, "suite", str(path), "--plan", "--seeds", "2")
    assert code == 0, err
    assert "| 4 | cnn | mnist | sgd | 1 |" in out and "skipping not_registered_yet" in err


def test_a_plan_names_only_known_evaluations(tmp_path: Path) -> None:
    from mnistbench.experiments.plan_format import load_sweep

    good, bad = tmp_path / "good.toml", tmp_path / "bad.toml"
    head = '[suite]\nname = "e"\n{}\n[space]\nmodel = ["mlp"]\n'
    good.write_text(head.format('evaluate = ["calibration", "adversarial"]'))
    bad.write_text(head.format('evaluate = ["calibration", "robustness"]'))
    assert load_sweep(good).evaluate == ("calibration", "adversarial")
    assert load_sweep(tmp_path / "good.toml").kind == "suite"
    with pytest.raises(ConfigError, match=r"evaluate.*corruptions, calibration, adversarial"):
        load_sweep(bad)
