"""Whether the process that recorded a 'running' run is still alive (``Store.mark_stale_runs``)."""

from __future__ import annotations

from datetime import datetime

import psutil

# psutil derives a process's start time from the boot time, which is only accurate to ~1 s.
_PID_START_TOLERANCE_S = 2.0


def stale_reason(pid: int) -> str:
    """The error recorded for a run whose process is gone."""
    return f"process {pid} ended without finishing the run (killed?)"


def pid_runs(pid: int, started_at: str | None) -> bool:
    """Whether the process that started a run (recorded pid and start time) is still alive.

    A pid that is alive but was started after the run began belongs to a new process that
    reused the number (common in containers, where the CLI is often pid 1), so it is not.
    """
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        created = process.create_time()
    except psutil.NoSuchProcess:
        return False
    except (psutil.AccessDenied, OSError):
        return True  # cannot tell: leave the run alone rather than wrongly interrupt it
    if started_at is None:
        return True
    try:
        started = datetime.fromisoformat(started_at).timestamp()
    except ValueError:
        return True
    return created <= started + _PID_START_TOLERANCE_S
