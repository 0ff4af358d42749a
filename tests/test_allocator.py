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
# the script's blocks: 64 MiB, above glibc's largest mmap threshold (32 MiB)
PAGES_PER_BLOCK = 64 * 1024 * 1024 // 4096  # 16,384 pages of 4 KiB


def test_the_setting_defaults_to_retain_and_a_bad_one_is_one_paragraph(monkeypatch) -> None:
    assert malloc_setting() == "retain"  # measured faster: benchmarks/results/malloc-*.md
    monkeypatch.setenv("MNISTBENCH_MALLOC", " Default ")
    assert malloc_setting() == "default"
    monkeypatch.setenv("MNISTBENCH_MALLOC", "jemalloc")
    with pytest.raises(ConfigError, match=r"MNISTBENCH_MALLOC is 'jemalloc'; it takes one of"):
        malloc_setting()


# Blocks come from malloc itself, not torch.ones: torch asks posix_memalign, which asks the heap
# for the size plus its alignment plus 32 bytes, so a freed block with a small allocation pinned
# behind it can be a few bytes short of the next identical request and the heap grows instead
# (seen 2026-12-08: 1 fresh process in 6, strace showing brk grow 64 MiB a block; also the
# 4,096-8,192 faults a block seen in-process with the suite loaded). A real training step's
# blocks mostly reuse anyway (ResNet-18 at 64 px: 19,628 faults a step down to 195,
# benchmarks/results/malloc-resnet18.md); an exact-size malloc reuses its freed block wherever it
# lies, so this shows the mechanism on any heap layout. A fresh interpreter keeps it apart from
# the thresholds earlier tests leave behind.
_FAULTS_SCRIPT = """
import ctypes, json, resource
from mnistbench.engine.allocator import retained_allocations

libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
BLOCK_BYTES = 64 * 1024 * 1024

def faults_per_block(blocks=4):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(blocks):
        block = libc.malloc(BLOCK_BYTES)
        ctypes.memset(block, 1, BLOCK_BYTES)  # writes every page
        libc.free(block)
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
