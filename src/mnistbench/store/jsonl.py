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

from mnistbench.errors import StoreError
from mnistbench.store.records import Artefact, InvalidRecord, RunRecord, StoredRun
from mnistbench.store.runs import Store
from mnistbench.store.schema_records import (
    LINE_MAX_BYTES,
    SCHEMA_VERSION,
    RecordError,
    check_export_line,
)

JSONL_FORMAT = "mnistbench-run"
JSONL_VERSION = SCHEMA_VERSION  # the run format's version (store/schema_records.py)
# Artefacts up to this size travel with their run (confusion matrices are ~350 bytes, JSON
# summaries a few KB); larger ones and every PNG are left out and counted: the export is meant
# for git, where binary blobs bloat every clone and never diff, and reports rebuild tables and
# figures from the metrics and epochs.
ARTEFACT_LIMIT_BYTES = 8 * 1024
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
    if len(content) > ARTEFACT_LIMIT_BYTES:
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


def read_jsonl(path: str | Path) -> Iterator[StoredRun | InvalidRecord]:
    """The runs of a JSON-lines export, in file order; a line that is not a valid run comes as
    an InvalidRecord naming its line and what is wrong (``merge`` refuses the file, or skips it
    with --skip-invalid). StoreError when the file cannot be read at all."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            number = 0
            while True:
                raw = fh.readline(LINE_MAX_BYTES + 1)
                if not raw:
                    return
                number += 1
                where = f"{path}, line {number}"
                if len(raw) > LINE_MAX_BYTES and not raw.endswith(b"\n"):
                    while raw and not raw.endswith(b"\n"):  # skip the rest of the long line
                        raw = fh.readline(LINE_MAX_BYTES)
                    yield InvalidRecord(
                        where, f"the line is longer than {LINE_MAX_BYTES // 2**20} MiB"
                    )
                    continue
                if not raw.strip():
                    continue
                try:
                    yield parse_line(raw.decode("utf-8"), where)
                except UnicodeDecodeError:
                    yield InvalidRecord(where, "the line is not UTF-8 text")
                except RecordError as error:
                    yield InvalidRecord(where, error.problem)
    except OSError as exc:
        raise StoreError(
            f"Cannot read the results export {path}: {exc}. Pass a results store or a file "
            "written by `mnistbench export --format jsonl`."
        ) from exc


def parse_line(text: str, where: str) -> StoredRun:
    """One line of an export as a StoredRun (run_id 0: the importing store numbers it), checked
    against the run format (store/schema_records.py); RecordError says what is wrong."""
    try:
        line = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _bad(where, f"it is not JSON ({exc.msg} at column {exc.colno})") from None
    except (ValueError, RecursionError) as exc:  # a 5,000-digit integer, 100,000 brackets
        raise _bad(where, f"it is not JSON this reader accepts ({type(exc).__name__})") from None
    if not isinstance(line, dict) or line.get("format") != JSONL_FORMAT:
        raise _bad(where, f'it is not an mnistbench run (no "format": "{JSONL_FORMAT}")')
    version = line.get("format_version")
    if isinstance(version, int) and not isinstance(version, bool) and version > JSONL_VERSION:
        raise _bad(
            where,
            f"the run has export format version {version}, newer than this mnistbench reads "
            f"({JSONL_VERSION}); upgrade mnistbench to merge it",
        )
    problem = check_export_line(line)
    if problem is not None:
        raise _bad(where, problem)
    run = RunRecord(
        run_id=0,
        **{key: line[key] for key in _IDENTITY},
        config=line["config"],
        environment=line["environment"],
        metrics=line["metrics"],
        hostname=line["hostname"],
        model_card=line["model_card"],
        fingerprint=line.get("fingerprint"),
    )
    epochs = [dict(epoch) for epoch in line["epochs"]]
    artefacts = [_artefact(entry) for entry in line["artefacts"]]
    return StoredRun(run, epochs, artefacts)


def _artefact(entry: dict) -> Artefact:
    if "text" in entry and entry["text"] is not None:
        content = entry["text"].encode("utf-8")
    else:
        content = base64.b64decode(entry["base64"])
    return Artefact(0, entry["name"], entry["kind"], content, entry.get("created_at"))


def _bad(where: str, problem: str) -> RecordError:
    return RecordError(
        f"{where} is not a valid run of an mnistbench export: {problem}. Pass a results store "
        "or a file written by `mnistbench export --format jsonl`.",
        problem=problem,
    )
