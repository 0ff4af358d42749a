"""Run the real `mnistbench` command in a child process on a tiny synthetic data set.

The `learnable_data_dir` fixture makes the catalog accept the synthetic files by patching it
in the test process; a child process needs the same patch, so it starts through a bootstrap
that reads the files' checksums and patches the catalog before calling `mnistbench.cli.main`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BOOTSTRAP = """
import dataclasses, gzip, hashlib, sys
from pathlib import Path
from mnistbench.data import DATASETS
from mnistbench.data.catalog import STANDARD_FILES

folder = Path(sys.argv[1]) / "mnist"
digests = {
    role: hashlib.sha256(gzip.decompress((folder / name).read_bytes())).hexdigest()
    for role, name in STANDARD_FILES.items()
}
DATASETS["mnist"] = dataclasses.replace(DATASETS["mnist"], sha256=digests, mirrors=())
from mnistbench.cli import main
sys.exit(main(sys.argv[2:]))
"""


def spawn_cli(data_root: Path, *args: str, **popen: object) -> subprocess.Popen:
    """`mnistbench ARGS` in a new process that accepts the synthetic data under `data_root`
    (`popen`: more Popen arguments, e.g. start_new_session=True or env=)."""
    env = {**os.environ, **popen.pop("env", {}), "MNISTBENCH_DATA": str(data_root),  # type: ignore[dict-item]
           "MNISTBENCH_OFFLINE": "1"}  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "-c", BOOTSTRAP, str(data_root), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,  # type: ignore[arg-type]
    )
