"""The command answers at once and cleanly: --help and argument errors load no heavy library,
every run setting has a flag, and bad input ends in one paragraph and exit 2 from the real
console script, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mnistbench.cli import main
from mnistbench.config import flag_of, settings

HEAVY = ("torch", "sklearn", "lightgbm", "matplotlib", "ray")
CONSOLE_SCRIPT = Path(sys.executable).parent / "mnistbench"
PROBE = """
import json, sys
from mnistbench.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps([m for m in {heavy!r} if m in sys.modules]))
"""


def heavy_modules_loaded(*argv: str) -> list[str]:
    """The heavy libraries a fresh process holds after `mnistbench ARGV`."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY), *argv],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    return json.loads(result.stdout.splitlines()[-1])


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["run", "--help"],
        ["suite", "--help"],
        ["sweep", "--help"],
        ["speedrun", "--help"],
        ["report", "--help"],
        ["compare", "--help"],
        ["data", "check", "--help"],
        ["runn", "mlp"],  # a typo in the verb
        ["run"],  # no model
        ["run", "mlp", "--epochs", "three"],
        ["run", "mlp", "--optimizer", "lion"],
        ["run", "mlp", "--seed", str(2**70)],  # a bad value is found before torch loads
        ["run", "mlp", "--model-option", "beta"],
    ],
    ids=lambda argv: " ".join(argv)[:30],
)
def test_help_and_argument_errors_load_no_heavy_library(argv: list[str]) -> None:
    assert heavy_modules_loaded(*argv) == []


def test_list_builds_its_models_without_the_compiler_stack() -> None:
    """`list` counts parameters by building each model on the CPU: on the meta device the
    initialisers go through torch._refs, which imports torch._dynamo (seconds for a listing).
    It needs torch, and sklearn (the SVMs' estimators), but no training-only library."""
    probe = PROBE.format(heavy=(*HEAVY, "torch._dynamo"))
    result = subprocess.run(
        [sys.executable, "-c", probe, "list"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    held = json.loads(result.stdout.splitlines()[-1])
    assert "torch" in held and "torch._dynamo" not in held
    assert "lightgbm" not in held and "ray" not in held and "matplotlib" not in held


def test_every_run_setting_is_in_run_help(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = capsys.readouterr().out
    for f in settings():
        shown = "model" if f.name == "model" else flag_of(f.name)
        assert shown in text, f"{f.name} has no flag in `mnistbench run --help`"
    assert "--step-size" in text and "--gamma" in text and "--no-nesterov" in text
    assert "score on the first N test" in text  # --subset says what it trims


@pytest.mark.parametrize(
    ("argv", "phrase"),
    [
        (["run", "mlp", "--model-option", "beta"], "KEY=VALUE"),
        (["run", "mlp", "--seed", str(2**70)], "--seed"),
        (["run", "mlp", "--seed", "-1"], "from 0 to 2147483647"),
        (["run", "mlp", "--min-delta", "-1"], "--min-delta"),
        (["run", "mlp", "--lr", "nan"], "--lr"),
        (["run", "mlp", "--target", "99"], "0.99"),
        (["run", "mlp", "--subset", "0"], "--subset"),
        (["run", "mlp", "--recipe-of", "cnnn"], "Unknown model 'cnnn'"),
        (["run", "mlp", "--workers", "0"], "--workers"),
        (["suite", "architecture-showdown", "--seeds", "0"], "--seeds"),
        (["speedrun", "--set", "warmup=3"], "Unknown run setting"),
        (["run", "mlp", "--epochs", "three"], "expected a whole number"),
    ],
    ids=lambda x: " ".join(x)[:40] if isinstance(x, list) else "",
)
def test_bad_input_in_the_real_console_script(tmp_path: Path, argv: list[str], phrase: str):
    store = tmp_path / "s.sqlite"
    result = subprocess.run(
        [str(CONSOLE_SCRIPT), *argv, "--store", str(store)],
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert phrase in result.stderr
    assert not store.exists()  # nothing was recorded, not even an empty store


def test_training_code_never_imports_the_report_package() -> None:
    # the report package loads matplotlib; planning and running trials must not need it
    modules = ("batch", "executors", "plan", "plan_format", "runner", "speedrun", "suites",
               "sweeps")  # fmt: skip
    probe = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module('mnistbench.experiments.' + name)\n"
        "print(json.dumps([m for m in ('mnistbench.report', 'matplotlib') if m in sys.modules]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    assert json.loads(result.stdout) == []
