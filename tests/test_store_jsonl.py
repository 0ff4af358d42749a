"""Results as data: runs exported as JSON lines, read back by merge exactly as a store is."""

from __future__ import annotations

import base64
import json
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from mnistbench.errors import StoreError
from mnistbench.store import (
    ARTEFACT_LIMIT_BYTES,
    Store,
    export_jsonl,
    read_jsonl,
    read_runs,
    write_jsonl,
)
from run_configs import real_config

FIXTURE = Path(__file__).parent / "fixtures" / "store_v1_5ae60b7.sql"


def fake_card(config: dict) -> dict:
    return {"card_version": 1, "model": config["model"], "source": {"kind": "test"}}


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """The real v1 store (migrated), plus runs with what JSON must carry exactly."""
    path = tmp_path / "source.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript(FIXTURE.read_text())
    conn.close()
    with Store(path, card_builder=fake_card) as store:
        card = {**fake_card({"model": "cnn"}), "fingerprint": "00ff00ff00ff00ff", "tags": ["ü"]}
        config, config_hash = real_config("cnn", lr=0.1 + 0.2)
        run_id = store.start_run(config, config_hash, {"cpu": "x86", "name": "naïve ☃"}, card)
        store.log_epoch(run_id, 1, {"train_loss": float("nan"), "val_accuracy": 1 / 3})
        store.add_artefact(run_id, "binary", "bin", bytes(range(256)))
        store.add_artefact(run_id, "too_big", "json", "[" + "1," * ARTEFACT_LIMIT_BYTES + "1]")
        store.finish_run(run_id, "finished", {"test_accuracy": 0.987654321012345, "ok": True})
        store.start_run(*real_config("mlp"), {})
    return path


def test_store_to_jsonl_to_store_to_jsonl_gives_the_same_bytes(source, tmp_path) -> None:
    export = tmp_path / "runs.jsonl"
    with Store(source, read_only=True) as store:
        summary = write_jsonl(store, export)
    assert (summary.runs, summary.running_left_out) == (10, 1)
    left_out = {(name, kind) for _, name, kind, _ in summary.artefacts_left_out}
    assert left_out == {("spike_raster", "png"), ("too_big", "json")}
    assert "left out: 2 artefact(s)" in summary.describe()

    with Store(tmp_path / "copy.sqlite") as copy:
        assert copy.import_runs(read_jsonl(export))[:2] == (10, 0)
        again = "".join(export_jsonl(copy))
    assert again == export.read_text(encoding="utf-8")
    assert again.count("\n") == 10


def test_a_line_holds_the_whole_run(source: Path, tmp_path: Path) -> None:
    with Store(source, read_only=True) as store:
        lines = [json.loads(line) for line in export_jsonl(store)]
        original = store.list_runs()[9]
    line = lines[9]
    assert list(line)[:4] == ["format", "format_version", "config_hash", "model"]
    assert line["config"] == original.config and line["config"]["lr"] == 0.1 + 0.2
    assert line["metrics"] == {"test_accuracy": 0.987654321012345, "ok": True}
    assert line["model_card"] == original.model_card
    assert line["fingerprint"] == "00ff00ff00ff00ff" == original.fingerprint
    assert line["environment"] == {"cpu": "x86", "name": "naïve ☃"}
    assert line["epochs"] == [{"epoch": 1, "train_loss": None, "val_accuracy": 1 / 3}]
    assert [a["name"] for a in line["artefacts"]] == ["binary"]
    assert base64.b64decode(line["artefacts"][0]["base64"]) == bytes(range(256))
    assert "pid" not in line and "run_id" not in line  # they only mean something in one store
    cm = lines[0]["artefacts"][0]
    assert cm["name"] == "confusion_matrix" and json.loads(cm["text"])[0][0] == 48


def test_merge_reads_an_export_exactly_as_it_reads_the_store(source, tmp_path) -> None:
    export = tmp_path / "runs.jsonl"
    with Store(source, read_only=True) as store:
        write_jsonl(store, export)

    def comparable(path: Path) -> list:
        return [
            (replace(s.run, run_id=0, pid=None), s.epochs,
             [(a.name, a.kind, a.content, a.created_at) for a in s.artefacts if a.kind != "png"
              and a.name != "too_big"])
            for s in read_runs(path)
        ]  # fmt: skip

    assert comparable(export) == comparable(source)
    from_store, from_export = tmp_path / "a.sqlite", tmp_path / "b.sqlite"
    for target, merged in ((from_store, source), (from_export, export)):
        with Store(target) as store:
            assert store.import_runs(read_runs(merged))[:2] == (10, 0)
            assert store.import_runs(read_runs(merged))[:2] == (0, 10)  # same duplicate rule
    with Store(from_store) as a, Store(from_export) as b:
        assert [replace(r, run_id=0) for r in a.list_runs()] == [
            replace(r, run_id=0) for r in b.list_runs()
        ]
        config_hash = real_config("cnn", lr=0.1 + 0.2)[1]
        assert a.find_completed(config_hash, fingerprint="00ff00ff00ff00ff") is not None


@pytest.mark.parametrize(
    ("text", "phrase"),
    [
        ("not json\n", "line 2: it is not JSON"),
        ('{"format": "other"}\n', 'no "format": "mnistbench-run"'),
        ('{"format": "mnistbench-run", "format_version": 1}\n', "config_hash: Field required"),
        ('{"format": "mnistbench-run", "format_version": 99}\n', "newer than this mnistbench"),
    ],
)
def test_a_bad_line_is_a_clear_error_and_nothing_of_the_file_is_merged(
    source: Path, tmp_path: Path, text: str, phrase: str
) -> None:
    export = tmp_path / "runs.jsonl"
    with Store(source, read_only=True) as store:
        first = next(export_jsonl(store))
    export.write_text(first + text, encoding="utf-8")
    with Store(tmp_path / "target.sqlite") as target:
        with pytest.raises(StoreError, match=phrase) as info:
            target.import_runs(read_runs(export))
        assert str(export) in str(info.value) and "--skip-invalid" in str(info.value)
        assert target.list_runs() == []  # all or nothing: the good line before it is not kept
        counts = target.import_runs(read_runs(export), skip_invalid=True)
        assert (counts.copied, len(counts.invalid)) == (1, 1)
        assert counts.invalid[0].where == f"{export}, line 2"
        assert len(target.list_runs()) == 1


def test_an_export_of_a_running_run_is_refused(source: Path, tmp_path: Path) -> None:
    with Store(source, read_only=True) as store:
        line = json.loads(next(export_jsonl(store)))
    export = tmp_path / "runs.jsonl"
    export.write_text(json.dumps({**line, "status": "running"}) + "\n", encoding="utf-8")
    (invalid,) = list(read_jsonl(export))
    assert "status: Input should be 'finished', 'diverged', 'failed'" in invalid.problem


def test_write_jsonl_replaces_the_file_only_when_complete(source, tmp_path, monkeypatch) -> None:
    export = tmp_path / "runs.jsonl"
    export.write_text("old\n")
    with Store(source, read_only=True) as store:
        monkeypatch.setattr(store, "artefacts", lambda run_id: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            write_jsonl(store, export)
    assert export.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir() if "jsonl" in p.name] == ["runs.jsonl"]
