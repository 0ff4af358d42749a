"""Making files and folders unwritable in tests, even when the tests run as root."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def unwritable(*paths: Path) -> Iterator[None]:
    """Make files and folders unwritable in a way the test's user cannot bypass: `chattr +i`
    (immutable, which binds root too) when running as root, chmod otherwise."""
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in paths}
        for p in paths:
            p.chmod(0o555 if p.is_dir() else 0o444)
        try:
            yield
        finally:
            for p, mode in modes.items():
                p.chmod(mode)
        return
    chattr = shutil.which("chattr")
    if chattr is None:
        pytest.skip("running as root without chattr: no way to make a folder unwritable")
    locked: list[Path] = []
    try:
        for p in paths:
            done = subprocess.run([chattr, "+i", str(p)], capture_output=True, text=True)
            if done.returncode != 0:
                pytest.skip(f"chattr +i does not work here ({done.stderr.strip()})")
            locked.append(p)
        yield
    finally:
        for p in reversed(locked):
            subprocess.run([chattr, "-i", str(p)], check=True)
