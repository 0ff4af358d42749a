"""Sweeps: TOML grids and seeded random search, clear errors, resume, failed trials as rows."""

from __future__ import annotations

import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from mnistbench.cli import main
from mnistbench.errors import ConfigError
from mnistbench.experiments import runner
from mnistbench.experiments.sweeps import load_sweep, plan_sweep
from mnistbench.store import Store
from synthetic_cli import spawn_cli

REPO = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str, name: str = "sweep.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


MLP_GRID = """
[sweep]
name = "mlp-lr"
[fixed]
model = "mlp"
epochs = 1
val_size = 100
subset = 300
[space]
lr = [1e-3, 3e-3, 0.5]
"""


def test_shipped_resnet_grid_is_study_c() -> None:
    sweep = load_sweep(REPO / "sweeps" / "resnet-grid.toml")
    assert sweep.method == "grid" and len(sweep.points()) == 32
    plan = plan_sweep(sweep, device="cpu")
    assert len({t.config_hash for t in plan.trials}) == 32
    configs = [t.config for t in plan.trials]
    assert {(c.batch_size, c.image_size) for c in configs} == {(16, 64)}
    assert Counter((c.dataset, c.model) for c in configs) == {
        (d, m): 8 for d in ("mnist", "fashion-mnist") for m in ("resnet18", "resnet50")
    }
    assert {(c.optimizer, c.lr, c.epochs) for c in configs} == {
        (o, lr, e) for o in ("sgd", "adam") for lr in (1e-3, 1e-4) for e in (3, 5)
    }


def test_shipped_random_example_parses() -> None:
    sweep = load_sweep(REPO / "sweeps" / "mlp-random.toml")
    plan = plan_sweep(sweep, device="cpu")
    assert sweep.method == "random" and len(plan.trials) == sweep.trials


def test_random_search_is_seeded_and_within_bounds(tmp_path: Path) -> None:
    text = """
[sweep]
method = "random"
trials = 20
seed = {seed}
[fixed]
model = "mlp"
[space]
lr = {{ log_uniform = [1e-4, 1e-1] }}
momentum = {{ uniform = [0.5, 0.9] }}
epochs = {{ int_uniform = [1, 3] }}
batch_size = [32, 64]
"""
    first = load_sweep(write(tmp_path, text.format(seed=1), "a.toml")).points()
    again = load_sweep(write(tmp_path, text.format(seed=1), "b.toml")).points()
    other = load_sweep(write(tmp_path, text.format(seed=2), "c.toml")).points()
    assert first == again and first != other and len(first) == 20
    for point in first:
        assert 1e-4 <= point["lr"] <= 1e-1 and 0.5 <= point["momentum"] <= 0.9
        assert point["epochs"] in (1, 2, 3) and point["batch_size"] in (32, 64)
    assert len({p["lr"] for p in first}) > 10  # drawn, not a handful of repeats


def test_command_line_options_override_the_file(tmp_path: Path) -> None:
    sweep = load_sweep(write(tmp_path, MLP_GRID))
    plan = plan_sweep(sweep, device="cpu", overrides={"epochs": 4, "subset": 500, "lr": None})
    assert [t.config.lr for t in plan.trials] == [1e-3, 3e-3, 0.5]
    assert {(t.config.epochs, t.config.subset) for t in plan.trials} == {(4, 500)}


@pytest.mark.parametrize(
    ("text", "phrases"),
    [
        ("[fixed]\nmodel = 'mlp'\n[space]\nlrr = [1e-3]\n", ["[space] lrr", "Did you mean lr"]),
        ("[fixd]\nmodel = 'mlp'\n", ["unknown key 'fixd'", "Did you mean fixed"]),
        ("[fixed]\nmodel = 'mlp'\nlr = 'fast'\n", ["[fixed] lr", "'fast' is not a valid lr"]),
        ("[fixed]\nmodel = 'mlp'\nepochs = 1.5\n", ["[fixed] epochs", "takes a int"]),
        ("[sweep]\nmethod = 'bayes'\n[fixed]\nmodel = 'mlp'\n", ["[sweep] method", "'bayes'"]),
        ("[sweep]\nmethod = 'random'\n[fixed]\nmodel = 'mlp'\n", ["[sweep] trials", "needs"]),
        ("[fixed]\nmodel = 'mlp'\n[space]\nlr = { log_uniform = [1e-4, 1e-2] }\n",
         ["[space] lr", "grid takes a list"]),
        ("[sweep]\nmethod = 'random'\ntrials = 2\n[fixed]\nmodel = 'mlp'\n[space]\n"
         "lr = { log_uniform = [0, 1] }\n", ["[space] lr", "low > 0"]),
        ("[sweep]\nmethod = 'random'\ntrials = 2\n[fixed]\nmodel = 'mlp'\n[space]\n"
         "epochs = { uniform = [1, 3] }\n", ["[space] epochs", "int_uniform"]),
        ("[fixed]\nmodel = 'mlp'\n[space]\nlr = []\n", ["[space] lr", "empty"]),
        ("[fixed]\nepochs = 1\n", ["no model"]),
        ("[fixed]\nmodel = 'mlp'\n[space]\nmodel = ['cnn']\n", ["both in [fixed] and in"]),
        ("[fixed\nmodel = 'mlp'\n", ["is not valid TOML"]),
    ],
)  # fmt: skip
def test_bad_sweep_files_name_the_file_and_key(tmp_path: Path, text: str, phrases) -> None:
    path = write(tmp_path, text, "bad.toml")
    with pytest.raises(ConfigError) as caught:
        load_sweep(path)
    message = str(caught.value)
    assert str(path) in message
    for phrase in phrases:
        assert phrase in message, f"{phrase!r} not in {message!r}"


def test_invalid_values_name_the_trial(tmp_path: Path) -> None:
    path = write(tmp_path, "[fixed]\nmodel = 'mlp'\n[space]\nepochs = [1, 0]\n")
    with pytest.raises(ConfigError, match=r"the trial with epochs=0: Invalid --epochs 0"):
        plan_sweep(load_sweep(path), device="cpu")
    path = write(tmp_path, "[fixed]\nmodel = 'mlpp'\n", "m.toml")
    with pytest.raises(ConfigError, match="Unknown model 'mlpp'"):
        plan_sweep(load_sweep(path), device="cpu")


def test_missing_file_is_a_clean_cli_error(capsys, tmp_path: Path) -> None:
    code, _, err = run_cli(capsys, "sweep", str(tmp_path / "nope.toml"))
    assert code == 2 and err.startswith("mnistbench: error: No sweep file at")


def test_failed_trial_is_a_row_and_the_sweep_goes_on(
    capsys, monkeypatch: pytest.MonkeyPatch, learnable_data_dir: Path, tmp_path: Path
) -> None:
    real_recipe = runner.run_recipe

    def fail_at_half(ctx, recipe):
        if ctx.config.lr == 0.5:
            raise RuntimeError("exploded on purpose")
        return real_recipe(ctx, recipe)

    monkeypatch.setattr(runner, "run_recipe", fail_at_half)
    store_path = tmp_path / "s.sqlite"
    args = ("sweep", str(write(tmp_path, MLP_GRID)), "--data-dir", str(learnable_data_dir),
            "--store", str(store_path), "--quiet")  # fmt: skip
    code, out, _ = run_cli(capsys, *args)
    assert code == 1  # something failed
    assert "failed" in out and "exploded on purpose" in out and "2 done, 1 failed" in out
    with Store(store_path) as store:
        rows = {r.config["lr"]: r for r in store.list_runs()}
        assert {lr: r.status for lr, r in rows.items()} == {
            1e-3: "finished", 3e-3: "finished", 0.5: "failed",
        }  # fmt: skip
        assert "exploded on purpose" in rows[0.5].error
    # once fixed, a rerun trains only the failed trial
    monkeypatch.setattr(runner, "run_recipe", real_recipe)
    code, out, _ = run_cli(capsys, *args)
    assert code == 0 and "1 done, 2 skipped" in out
    with Store(store_path) as store:
        statuses = Counter((r.config["lr"], r.status) for r in store.list_runs())
        assert statuses == {(1e-3, "finished"): 1, (3e-3, "finished"): 1, (0.5, "failed"): 1,
                            (0.5, "finished"): 1}  # fmt: skip


def test_a_trial_the_model_cannot_take_stops_the_sweep_before_anything_trains(
    capsys, learnable_data_dir: Path, tmp_path: Path
) -> None:
    # cnn's classifier expects 28x28 inputs: the plan's check builds each model and passes a
    # probe batch through it, so the 8x8 trial is bad input, named before the 28x28 one trains
    path = write(tmp_path, "[fixed]\nmodel = 'cnn'\nepochs = 1\nval_size = 100\nsubset = 300\n"
                 "[space]\nimage_size = [8, 28]\n")  # fmt: skip
    store_path = tmp_path / "s.sqlite"
    code, _, err = run_cli(capsys, "sweep", str(path), "--data-dir", str(learnable_data_dir),
                           "--store", str(store_path), "--quiet")  # fmt: skip
    assert code == 2 and "cannot take a batch of shape (2, 1, 8, 8)" in err
    with Store(store_path) as store:
        assert store.list_runs() == []


def test_ctrl_c_records_the_trial_and_stops_the_sweep(
    capsys, monkeypatch: pytest.MonkeyPatch, learnable_data_dir: Path, tmp_path: Path
) -> None:
    real_recipe = runner.run_recipe

    def interrupt_second(ctx, recipe):
        if ctx.config.lr == 3e-3:
            raise KeyboardInterrupt
        return real_recipe(ctx, recipe)

    monkeypatch.setattr(runner, "run_recipe", interrupt_second)
    store_path = tmp_path / "s.sqlite"
    code, _, err = run_cli(capsys, "sweep", str(write(tmp_path, MLP_GRID)), "--data-dir",
                           str(learnable_data_dir), "--store", str(store_path),
                           "--quiet")  # fmt: skip
    assert code == 130 and "interrupted" in err
    with Store(store_path) as store:
        statuses = {r.config["lr"]: r.status for r in store.list_runs()}
    assert statuses == {1e-3: "finished", 3e-3: "interrupted"}  # the third never started


def test_sigkill_then_rerun_records_each_trial_once(
    capsys, learnable_data_dir: Path, tmp_path: Path
) -> None:
    path = write(tmp_path, "[fixed]\nmodel = 'mlp'\nepochs = 6\nval_size = 100\nsubset = 300\n"
                 "[space]\nseed = [0, 1, 2, 3]\n")  # fmt: skip
    store_path = tmp_path / "s.sqlite"
    args = ("sweep", str(path), "--store", str(store_path), "--quiet")
    process = spawn_cli(learnable_data_dir, *args)
    # wait until one trial has finished and the next one is part-way (an epoch recorded)
    deadline, killed_mid_trial = time.monotonic() + 120, False
    while time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
        if not store_path.exists():
            continue
        with Store(store_path) as store:
            runs = store.list_runs()
            running = [r for r in runs if r.status == "running"]
            one_done = any(r.status == "finished" for r in runs)
            if one_done and running and store.epochs(running[0].run_id):
                process.send_signal(signal.SIGKILL)
                killed_mid_trial = True
                break
    process.communicate(timeout=60)
    assert killed_mid_trial, "the sweep ended before it could be killed part-way"
    with Store(store_path) as store:
        before = {r.run_id: r.status for r in store.list_runs()}
    assert "running" in before.values() and len(before) < 4

    code, out, _ = run_cli(capsys, *args, "--data-dir", str(learnable_data_dir))
    assert code == 0
    with Store(store_path) as store:
        runs = store.list_runs()
    finished = Counter(r.config_hash for r in runs if r.status == "finished")
    assert len(finished) == 4 and set(finished.values()) == {1}  # each trial exactly once
    after = {r.run_id: r.status for r in runs}
    for run_id, status in before.items():  # finished rows kept, the killed one marked
        assert after[run_id] == ("finished" if status == "finished" else "interrupted")
    skipped = sum(" skipped " in line for line in out.splitlines() if line.startswith("["))
    assert skipped == sum(s == "finished" for s in before.values())


ENTRIES = """
[sweep]
name = "parts"
seeds = 2
label = "{optimizer} lr={lr:e}"

[fixed]
epochs = 1

[space]
lr = [1e-3, 1e-2]

[[entries]]
model = "mlp"
optimizer = "sgd"

[[entries]]
model = "{tiny}"
optimizer = "adam"
recipe_of = "cnn"
label = "tiny with cnn's recipe"
space = {{ weight_decay = [0.0, 1e-4] }}
"""

TINY = """
from torch import nn


def tiny(num_classes=10):
    return nn.Sequential(nn.Flatten(), nn.Linear(784, num_classes))
"""


def _tiny_spec(tmp_path: Path) -> str:
    path = tmp_path / "my_nets.py"
    path.write_text(TINY)
    return f"{path}:tiny"


def test_entries_labels_seeds_and_recipe_of(tmp_path: Path) -> None:
    tiny = _tiny_spec(tmp_path)
    text = ENTRIES.replace("{tiny}", tiny).replace("{{", "{").replace("}}", "}")
    plan = plan_sweep(load_sweep(write(tmp_path, text)), device="cpu")
    got = [(t.config.model, t.config.lr, t.config.weight_decay, t.config.seed, t.label)
           for t in plan.trials]  # fmt: skip
    mlp = [("mlp", lr, 0.0, seed, f"sgd lr={text}")
           for lr, text in ((1e-3, "1e-3"), (1e-2, "1e-2")) for seed in (0, 1)]  # fmt: skip
    outside = [(tiny, lr, decay, seed, "tiny with cnn's recipe")
               for decay in (0.0, 1e-4) for lr in (1e-3, 1e-2) for seed in (0, 1)]  # fmt: skip
    assert got == mlp + outside
    tiny_config = plan.trials[-1].config
    assert tiny_config.recipe_of == "cnn" and tiny_config.batch_size == 64  # RunConfig's is 128


def test_a_model_spec_reaches_the_model_lookup(tmp_path: Path) -> None:
    # an outside model ("file.py:fn") is resolved by make_config's model lookup; the plan hands
    # the spec over as written, with its recipe_of
    tiny = _tiny_spec(tmp_path)
    path = write(tmp_path, f'[fixed]\nmodel = "{tiny}"\nrecipe_of = "cnn"\n')
    (trial,) = plan_sweep(load_sweep(path), device="cpu").trials
    assert trial.config.model == tiny and trial.config.recipe_of == "cnn"
    assert trial.config.batch_size == 64 and trial.config.grad_clip == 1.0  # cnn's recipe


@pytest.mark.parametrize(
    ("text", "phrase"),
    [
        ("[sweep]\n[suite]\n[fixed]\nmodel = 'mlp'\n", "one header"),
        ("[sweep]\nseeds = 0\n[fixed]\nmodel = 'mlp'\n", "[sweep] seeds"),
        ("[sweep]\nlabel = '{nope}'\n[fixed]\nmodel = 'mlp'\n", "label"),
        ("[[entries]]\nmodel = 'mlp'\nlr = 'fast'\n", "[entries 1] lr"),
        ("[[entries]]\nmodle = 'mlp'\n", "Did you mean model"),
        ("[fixed]\nmodel = 'mlp'\nrecipe_of = 3\n", "[fixed] recipe_of"),
    ],
)
def test_bad_plan_files_name_the_key(tmp_path: Path, text: str, phrase: str) -> None:
    with pytest.raises(ConfigError, match=None) as caught:
        plan_sweep(load_sweep(write(tmp_path, text, "bad.toml")), device="cpu")
    assert phrase in str(caught.value) and "bad.toml" in str(caught.value)
