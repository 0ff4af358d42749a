"""engine/allocator.py: `retain` keeps freed memory mapped inside the context (counted in page
faults, not timed), the defaults come back outside it, training gives the same numbers either
way, and a bad $MNISTBENCH_MALLOC is one paragraph."""

from __future__ import annotations

import pytest

from mnistbench.engine import allocator
from mnistbench.engine.allocator import malloc_setting, retained_allocations
from mnistbench.errors import ConfigError
from mnistbench.experiments import train_config
from mnistbench.experiments.configure import make_config
from synthetic import learnable_raw

needs_glibc = pytest.mark.skipif(
    not allocator.retention_available(), reason="mallopt is glibc's; this C library has none"
)
# the script's blocks: 16 Mi floats = 64 MiB, above glibc's largest mmap threshold (32 MiB)
PAGES_PER_BLOCK = 16 * 1024 * 1024 * 4 // 4096  # 16,384 pages of 4 KiB


def test_the_setting_defaults_to_retain_and_a_bad_one_is_one_paragraph(monkeypatch) -> None:
    assert malloc_setting() == "retain"  # measured faster: benchmarks/results/malloc-*.md
    monkeypatch.setenv("MNISTBENCH_MALLOC", " Default ")
    assert malloc_setting() == "default"
    monkeypatch.setenv("MNISTBENCH_MALLOC", "jemalloc")
    with pytest.raises(ConfigError, match=r"MNISTBENCH_MALLOC is 'jemalloc'; it takes one of"):
        malloc_setting()


# Run in a fresh interpreter: once other modules have shaped the heap, a retained 64 MiB block
# still faults in part of its pages (8,192 a block in this process with the whole suite
# collected, 4,096 with only mnistbench.cli imported; seen 2026-12-08, not yet explained),
# though a real training step's faults still vanish there (small_cnn_bn with the CLI's
# libraries loaded: 2,949 a step by default, 0.05 retained). The fresh process shows the
# mechanism without that noise.
_FAULTS_SCRIPT = """
import json, resource, torch
from mnistbench.engine.allocator import retained_allocations

def faults_per_block(blocks=4):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(blocks):
        block = torch.ones(16 * 1024 * 1024)
        del block
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / blocks

counts = {"before": faults_per_block()}
with retained_allocations("retain") as retained:
    faults_per_block(blocks=1)  # the first block maps the pages; the heap keeps them
    counts["retained"] = faults_per_block()
counts["after"], counts["in_force"] = faults_per_block(), retained
print(json.dumps(counts))
"""


@needs_glibc
def test_retain_reuses_freed_pages_and_the_defaults_come_back_after() -> None:
    import json
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", _FAULTS_SCRIPT], check=True, capture_output=True, text=True
    ).stdout
    counts = json.loads(out.strip().splitlines()[-1])
    assert counts["in_force"] is True
    # glibc maps a 64 MiB block afresh each time: a fault for every 4 KiB page written
    assert counts["before"] >= 0.9 * PAGES_PER_BLOCK
    assert counts["retained"] < 0.01 * PAGES_PER_BLOCK
    assert counts["after"] >= 0.9 * PAGES_PER_BLOCK  # given back, mapped afresh again


def test_default_changes_nothing(monkeypatch) -> None:
    monkeypatch.setattr(allocator, "_glibc", lambda: pytest.fail("mallopt was reached"))
    with retained_allocations("default") as retained:
        assert retained is False
    monkeypatch.setenv("MNISTBENCH_MALLOC", "default")
    with retained_allocations() as retained:  # from $MNISTBENCH_MALLOC
        assert retained is False


def test_training_gives_the_same_numbers_either_way_and_records_the_setting(monkeypatch) -> None:
    config = make_config("mlp", epochs=2, val_size=100, batch_size=128)
    monkeypatch.setenv("MNISTBENCH_MALLOC", "default")
    plain = train_config(config, raw=learnable_raw(), measure_energy=False)
    monkeypatch.delenv("MNISTBENCH_MALLOC")  # retain, the default
    retained = train_config(config, raw=learnable_raw(), measure_energy=False)
    assert plain.environment["malloc_setting"] == "default"
    assert plain.environment["malloc_retained"] is False
    assert retained.environment["malloc_setting"] == "retain"
    assert retained.environment["malloc_retained"] is allocator.retention_available()
    for key in ("test_accuracy", "final_train_loss", "best_val_accuracy"):
        assert retained.metrics[key] == plain.metrics[key], key
    assert [e["train_loss"] for _, e in retained.epochs] == [
        e["train_loss"] for _, e in plain.epochs
    ]
    assert retained.status == plain.status == "finished"
