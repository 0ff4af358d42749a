"""Runs as JSON lines: one ended run per line with everything recorded about it (identity,
config, environment, metrics, model card, fingerprint, epochs, small artefacts). It is how
results live in a repository as text (``mnistbench export --format jsonl``), and ``mnistbench
merge`` reads it back as it reads a store.

Exporting a store, importing the export into a new store and exporting that gives the same bytes.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from mnistbench.artefacts import PREDICTIONS_KIND
from mnistbench.errors import StoreError
from mnistbench.store.records import FINAL_STATUSES, Artefact, RunRecord, StoredRun
from mnistbench.store.runs import Store

JSONL_FORMAT = "mnistbench-run"
JSONL_VERSION = 1
# Artefacts up to this size travel with their run (confusion matrices are ~350 bytes, JSON
# summaries a few KB); larger ones and every PNG are left out and counted: the export is meant
# for git, where binary blobs bloat every clone and never diff, and reports rebuild tables and
# figures from the metrics and epochs.
ARTEFACT_LIMIT_BYTES = 8 * 1024
# Per-image test predictions travel whatever the limit above (~25-40 KB for 10,000 images):
# paired tests between runs (`mnistbench compare`) need them on the machine that compares
PREDICTIONS_LIMIT_BYTES = 512 * 1024
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_IDENTITY = ("config_hash", "model", "dataset", "status", "error", "started_at", "finished_at")


@dataclass
class JsonlSummary:
    """What an export wrote and what it left out."""

    runs: int = 0
    artefacts: int = 0
    running_left_out: int = 0  # runs still running have no result yet
    artefacts_left_out: list[tuple[int, str, str, int]] = field(default_factory=list)
    # (run_id, artefact name, kind, bytes) of each artefact left out

    def describe(self) -> str:
        """One line for the user, e.g. '12 run(s), 11 artefact(s); left out: 1 PNG (19.1 KB)'."""
        text = f"{self.runs} run(s), {self.artefacts} artefact(s)"
        left = []
        if self.artefacts_left_out:
            size_kb = sum(entry[3] for entry in self.artefacts_left_out) / 1024
            left.append(
                f"{len(self.artefacts_left_out)} artefact(s) over {ARTEFACT_LIMIT_BYTES // 1024} "
                f"KB or PNG ({size_kb:.1f} KB)"
            )
        if self.running_left_out:
            left.append(f"{self.running_left_out} run(s) still running")
        return text + (f"; left out: {', '.join(left)}" if left else "")


def _artefact_entry(artefact: Artefact) -> dict[str, Any] | None:
    """An artefact as JSON, or None when it stays out of the export."""
    content = artefact.content
    if artefact.kind == "png" or content.startswith(_PNG_MAGIC):
        return None
    limit = PREDICTIONS_LIMIT_BYTES if artefact.kind == PREDICTIONS_KIND else ARTEFACT_LIMIT_BYTES
    if len(content) > limit:
        return None
    entry: dict[str, Any] = {"name": artefact.name, "kind": artefact.kind}
    entry["created_at"] = artefact.created_at
    try:
        entry["text"] = content.decode("utf-8")
    except UnicodeDecodeError:
        entry["base64"] = base64.b64encode(content).decode("ascii")
    return entry


def run_line(stored: StoredRun, summary: JsonlSummary | None = None) -> str:
    """One run as one line of JSON (ending in a newline)."""
    run = stored.run
    line: dict[str, Any] = {"format": JSONL_FORMAT, "format_version": JSONL_VERSION}
    line.update({key: getattr(run, key) for key in _IDENTITY})
    line["hostname"] = run.hostname
    line["fingerprint"] = run.fingerprint
    line["config"] = run.config
    line["environment"] = run.environment
    line["metrics"] = run.metrics
    line["model_card"] = run.model_card
    line["epochs"] = stored.epochs
    artefacts = []
    for artefact in stored.artefacts:
        entry = _artefact_entry(artefact)
        if entry is not None:
            artefacts.append(entry)
        elif summary is not None:
            summary.artefacts_left_out.append(
                (run.run_id, artefact.name, artefact.kind, len(artefact.content))
            )
    line["artefacts"] = artefacts
    if summary is not None:
        summary.runs += 1
        summary.artefacts += len(artefacts)
    # the store already turned NaN/inf into null, so strict JSON cannot fail here
    return json.dumps(line, allow_nan=False, separators=(",", ":")) + "\n"


def export_jsonl(
    store: Store, runs: Iterable[RunRecord] | None = None, summary: JsonlSummary | None = None
) -> Iterator[str]:
    """The lines of a JSON-lines export of ``runs`` (default: every run of the store), in run
    order; runs still running are left out (counted in ``summary``)."""
    chosen = store.list_runs() if runs is None else list(runs)
    for run in chosen:
        if run.status == "running":
            if summary is not None:
                summary.running_left_out += 1
            continue
        stored = StoredRun(run, store.epochs(run.run_id), store.artefacts(run.run_id))
        yield run_line(stored, summary)


def write_jsonl(
    store: Store, out: str | Path | TextIO, runs: Iterable[RunRecord] | None = None
) -> JsonlSummary:
    """Write the export to a file (replaced only once complete) or an open text stream."""
    summary = JsonlSummary()
    if not isinstance(out, (str, Path)):
        out.writelines(export_jsonl(store, runs, summary))
        return summary
    path = Path(out)
    partial = path.with_name(f".{path.name}.partial")
    try:
        with partial.open("w", encoding="utf-8", newline="\n") as fh:
            fh.writelines(export_jsonl(store, runs, summary))
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return summary


def read_jsonl(path: str | Path) -> Iterator[StoredRun]:
    """The runs of a JSON-lines export, in file order; StoreError names the line of a bad one."""
    path = Path(path)
    try:
        with path.open(encoding="utf-8") as fh:
            for number, text in enumerate(fh, start=1):
                if text.strip():
                    yield parse_line(text, f"{path}, line {number}")
    except (OSError, UnicodeDecodeError) as exc:
        raise StoreError(
            f"Cannot read the results export {path}: {exc}. Pass a results store or a file "
            "written by `mnistbench export --format jsonl`."
        ) from exc


def parse_line(text: str, where: str) -> StoredRun:
    """One line of an export as a StoredRun (run_id 0: the importing store numbers it)."""
    try:
        line = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _bad(where, f"it is not JSON ({exc.msg} at column {exc.colno})") from exc
    if not isinstance(line, dict) or line.get("format") != JSONL_FORMAT:
        raise _bad(where, f'it is not an mnistbench run (no "format": "{JSONL_FORMAT}")')
    version = line.get("format_version")
    if not isinstance(version, int) or version > JSONL_VERSION:
        raise StoreError(
            f"{where}: the run has export format version {version!r}, newer than this "
            f"mnistbench reads ({JSONL_VERSION}). Upgrade mnistbench to merge this export."
        )
    try:
        run = RunRecord(
            run_id=0,
            **{key: line[key] for key in _IDENTITY},
            config=_dict(line, "config"),
            environment=_dict(line, "environment"),
            metrics=_dict(line, "metrics"),
            hostname=line["hostname"],
            model_card=_dict(line, "model_card"),
            fingerprint=line.get("fingerprint"),
        )
        if run.status not in FINAL_STATUSES:
            raise ValueError(f"status {run.status!r} is not one of {', '.join(FINAL_STATUSES)}")
        epochs = [dict(epoch) for epoch in line["epochs"]]
        if any(not isinstance(epoch.get("epoch"), int) for epoch in epochs):
            raise ValueError("an epoch without an integer 'epoch'")
        artefacts = [_artefact(entry) for entry in line["artefacts"]]
    except KeyError as exc:
        raise _bad(where, f"it lacks the field {exc.args[0]!r}") from exc
    except (TypeError, ValueError) as exc:
        raise _bad(where, str(exc)) from exc
    return StoredRun(run, epochs, artefacts)


def _dict(line: dict, key: str) -> dict:
    value = line[key]
    if not isinstance(value, dict):
        raise ValueError(f"{key!r} is not an object")
    return value


def _artefact(entry: dict) -> Artefact:
    if "text" in entry:
        content = str(entry["text"]).encode("utf-8")
    else:
        content = base64.b64decode(entry["base64"], validate=True)
    return Artefact(0, str(entry["name"]), str(entry["kind"]), content, entry.get("created_at"))


def _bad(where: str, problem: str) -> StoreError:
    return StoreError(
        f"{where} is not a run of an mnistbench export: {problem}. Pass a results store or a "
        "file written by `mnistbench export --format jsonl`; nothing was merged from this line "
        "on."
    )
