"""Shared fixtures: every test runs offline, away from the user's cache and data folders."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from mnistbench.cards import reconstruct_card
from mnistbench.data.catalog import STANDARD_FILES
from mnistbench.engine import peaks
from mnistbench.store import install_card_builder
from synthetic import install_as_mnist

# Runs written without a card get the model registry's, as in the CLI (which installs the same
# builder at its start): the store cannot import the registry itself.
install_card_builder(reconstruct_card)

# The Ctrl-C tests need SIGINT delivered. A job started in the background by a non-interactive
# shell (`nohup python -m pytest &`) inherits SIGINT ignored, and then neither this process nor
# the CLI processes it spawns (an ignored signal stays ignored across exec) ever see Ctrl-C:
# three tests failed that way. Give the session the handler an interactive start would have;
# its children then start with the default disposition.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# Captured before the autouse fixture clears it, for tests marked real_data.
REAL_DATA_ENV = os.environ.get("MNISTBENCH_DATA")
# Captured before the autouse fixture lifts it, for the tests of that judgement (`judged_peaks`).
SHIPPED_MAX_OTHERS_CPU_SHARE = peaks.MAX_OTHERS_CPU_SHARE


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the user's cache, MNISTBENCH_DATA, proxies, or the network."""
    monkeypatch.delenv("MNISTBENCH_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setenv("MNISTBENCH_OFFLINE", "1")
    # a run measures a missing peak itself (seconds each); tests that check it turn it on
    monkeypatch.setenv("MNISTBENCH_AUTO_PEAK", "off")
    # the suite shares its machine (Ray's workers, a developer's own runs), so a peak a test
    # measures for real is never judged disturbed; the tests of that judgement use judged_peaks
    monkeypatch.setattr(peaks, "MAX_OTHERS_CPU_SHARE", 1.0)
    # inductor's C++ wrapper (the CPU's default for --compile) builds a C++ file per compiled
    # graph, minutes on the 2-core CI machine for the few tests that compile; those tests check
    # compilation through the Python wrapper, tests/test_speedrun.py the C++ one's wiring
    monkeypatch.setenv("MNISTBENCH_COMPILE_WRAPPER", "python")
    for var in list(os.environ):
        if var.lower().endswith("_proxy"):
            monkeypatch.delenv(var)


@pytest.fixture
def judged_peaks(monkeypatch: pytest.MonkeyPatch) -> float:
    """Peak measurements judged as in use: the shipped limit on other processes' CPU share."""
    monkeypatch.setattr(peaks, "MAX_OTHERS_CPU_SHARE", SHIPPED_MAX_OTHERS_CPU_SHARE)
    return SHIPPED_MAX_OTHERS_CPU_SHARE


@pytest.fixture
def learnable_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data root holding a tiny learnable "mnist" whose checksums the catalog accepts."""
    return install_as_mnist(tmp_path / "data", monkeypatch)


def real_data_root(name: str = "mnist") -> Path:
    """The real data root from MNISTBENCH_DATA (relative to the repo root); skips the test when
    that folder does not hold the four files of `name`."""
    if not REAL_DATA_ENV:
        pytest.skip(
            "MNISTBENCH_DATA is not set; point it at a folder holding mnist/, fashion-mnist/"
        )
    root = Path(REAL_DATA_ENV)
    if not root.is_absolute():
        root = Path(__file__).resolve().parent.parent / root
    folder = root / name
    if not all(
        (folder / f).is_file() or (folder / f[:-3]).is_file() for f in STANDARD_FILES.values()
    ):
        pytest.skip(f"real {name} files are not in {folder}")
    return root
