"""The C allocator during training: keep freed memory mapped instead of returning it each step.

glibc's malloc serves a large block (above a threshold that starts at 128 KiB) with mmap and
gives it back with munmap when it is freed, so a training step that frees and allocates its
activations and gradients again touches fresh pages, and the kernel faults in and zeroes each
4 KiB of them: 19,600 minor page faults a step for ResNet-18 at 64 px and 1,500 for
small_cnn_bn on the 2-core AVX2 EPYC (getrusage over the step alone,
`benchmarks/results/malloc-*.md`). Inside `retained_allocations()` malloc takes every block from
its heap (M_MMAP_MAX 0) and keeps what is freed (M_TRIM_THRESHOLD 1 GiB), so the steps after
the first reuse pages already mapped. On the way out the limits go back to glibc's documented
defaults and malloc_trim(0) returns what was kept, so what a later run measures as its peak
memory is its own. Reuse is the heap's to give, not a promise: torch allocates with
posix_memalign, which asks for a block's size plus its alignment, so a freed block with a small
allocation pinned behind it can be too small for the same request, and the heap grows instead.
A training step's many blocks reuse well in practice (the faults above, peak memory the same);
a lone block allocated over and over may not (tests/test_allocator.py says when it was seen).
A nested fit restores the defaults when it ends, early for the outer one: harmless (slower,
not wrong), and no recipe nests them today.

`$MNISTBENCH_MALLOC` chooses: `retain` (the default since it measured faster on both models
it was timed on: ResNet-18 at 64 px 0.934x a step, small_cnn_bn 0.945x, peak memory the same;
`benchmarks/results/malloc-*.md`) or `default` (glibc as it is); every run records the choice
and whether it applied (`malloc_setting`, `malloc_retained`: only glibc has mallopt).
PyTorch's own advice for CPU training is a caching allocator (jemalloc or tcmalloc through
LD_PRELOAD); neither is installed here and a preload cannot be set from inside a run, so these
two glibc switches do the same job for the loop alone. One lasting effect: glibc stops moving
its mmap threshold once mallopt has set a limit, so after the first retained fit the process
keeps a fixed threshold.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
from contextlib import contextmanager

from mnistbench.engine.device import env_choice

MALLOC_ENV = "MNISTBENCH_MALLOC"
MALLOC_CHOICES = ("default", "retain")

# mallopt parameters (malloc.h) and glibc's documented defaults for them (mallopt(3))
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
DEFAULT_TRIM_THRESHOLD = 128 * 1024
DEFAULT_MMAP_MAX = 65536
RETAINED_TRIM_THRESHOLD = 1 << 30  # free memory above the heap's top is returned past 1 GiB


def malloc_setting() -> str:
    """The allocator choice from $MNISTBENCH_MALLOC (default `retain`). Recorded in every run's
    environment."""
    return env_choice(
        MALLOC_ENV,
        MALLOC_CHOICES,
        "retain",
        "'retain' keeps freed memory mapped during training (glibc only; fewer page faults a "
        "step), 'default' leaves the C allocator as it is.",
    )


def _glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc (mallopt and malloc_trim exist), else None."""
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 (raises AttributeError outside glibc)
        libc.mallopt  # noqa: B018
        libc.malloc_trim  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


def retention_available() -> bool:
    return _glibc() is not None


@contextmanager
def retained_allocations(setting: str | None = None) -> Iterator[bool]:
    """Keep freed memory mapped for the duration (`retain`); yields whether it is in force.
    `setting` defaults to $MNISTBENCH_MALLOC."""
    setting = setting or malloc_setting()
    libc = _glibc() if setting == "retain" else None
    if libc is None:
        yield False
        return
    libc.mallopt(M_MMAP_MAX, 0)
    libc.mallopt(M_TRIM_THRESHOLD, RETAINED_TRIM_THRESHOLD)
    try:
        yield True
    finally:
        libc.mallopt(M_MMAP_MAX, DEFAULT_MMAP_MAX)
        libc.mallopt(M_TRIM_THRESHOLD, DEFAULT_TRIM_THRESHOLD)
        libc.malloc_trim(0)
