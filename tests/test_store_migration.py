"""Schema 2 (model card, fingerprint) and the migration of a real schema-1 store, the one commit
5ae60b7 wrote (tests/fixtures/store_v1_5ae60b7.sql), in place and with nothing lost."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

import pytest

from mnistbench.errors import StoreError
from mnistbench.store import SCHEMA_VERSION, Store, minimal_card, schema

FIXTURE = Path(__file__).parent / "fixtures" / "store_v1_5ae60b7.sql"
V1_RUN_COLUMNS = 17  # what schema 1's runs table has; schema 2 appends two
CONFIG = {"model": "mlp", "dataset": "mnist", "epochs": 3}


def fake_card(config: dict) -> dict:
    """A card builder that needs no model registry; it echoes what it was given."""
    return {"card_version": 1, "model": config["model"], "source": {"kind": "test"},
            "seed": config.get("seed"), "measurement": {"version": 1}}  # fmt: skip


def load_v1(path: Path) -> Path:
    conn = sqlite3.connect(path)
    conn.executescript(FIXTURE.read_text())
    conn.close()
    return path


def raw_rows(path: Path) -> dict[str, list[tuple]]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {
            table: conn.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall()
            for table in ("meta", "runs", "epochs", "artefacts")
        }
    finally:
        conn.close()


@pytest.fixture
def v1_path(tmp_path: Path) -> Path:
    return load_v1(tmp_path / "v1.sqlite")


def test_fixture_is_a_schema_1_store(v1_path: Path) -> None:
    rows = raw_rows(v1_path)
    assert dict(rows["meta"])["schema_version"] == "1"
    assert (len(rows["runs"]), len(rows["epochs"]), len(rows["artefacts"])) == (9, 36, 8)
    assert {len(row) for row in rows["runs"]} == {V1_RUN_COLUMNS}


def test_v1_store_migrates_in_place_keeping_every_row_byte_for_byte(v1_path: Path) -> None:
    before = raw_rows(v1_path)
    with Store(v1_path, card_builder=fake_card) as store:
        runs = store.list_runs()
        epochs = {run.run_id: store.epochs(run.run_id) for run in runs}
        artefacts = {run.run_id: store.artefacts(run.run_id) for run in runs}
    after = raw_rows(v1_path)

    assert dict(after["meta"]) == {
        "schema_version": str(SCHEMA_VERSION),
        "format": "mnistbench-results",
    }
    assert after["epochs"] == before["epochs"]
    assert after["artefacts"] == before["artefacts"]  # blobs included, byte for byte
    assert [row[:V1_RUN_COLUMNS] for row in after["runs"]] == before["runs"]
    for row, run in zip(after["runs"], runs, strict=True):
        card_json, fingerprint = row[V1_RUN_COLUMNS:]
        assert json.loads(card_json) == fake_card(json.loads(row[5])) == run.model_card
        assert fingerprint is None and run.fingerprint is None  # unknown for old runs

    assert [run.model for run in runs] == [
        "mlp", "cnn", "beta_vae", "svm_rbf", "dbn", "snn_single_step", "svm_poly", "cnn",
        "microresnet",
    ]  # fmt: skip
    assert [run.status for run in runs].count("finished") == 7
    assert {run.status for run in runs} == {"finished", "failed", "interrupted"}
    assert sum(len(e) for e in epochs.values()) == 36
    raster = next(a for a in artefacts[6] if a.name == "spike_raster")
    assert raster.content.startswith(b"\x89PNG") and len(raster.content) == 19533

    # Opening again changes nothing: the migration ran once.
    with Store(v1_path, card_builder=fake_card):
        pass
    assert raw_rows(v1_path) == after


def test_v1_migration_without_a_card_builder_gives_minimal_cards(v1_path, monkeypatch) -> None:
    monkeypatch.setattr(schema, "_installed_card_builder", None)  # none installed (conftest's)
    with Store(v1_path) as store:
        runs = store.list_runs()
    assert [run.model_card for run in runs] == [minimal_card({"model": r.model}) for r in runs]
    assert runs[0].model_card == {
        "card_version": 1, "model": "mlp", "source": {"kind": "reconstructed"},
        "measurement": {"version": 1},
    }  # fmt: skip


def test_a_failing_card_builder_gives_a_minimal_card_with_the_reason(v1_path: Path) -> None:
    def broken(config: dict) -> dict:
        raise KeyError(config["model"])

    with Store(v1_path, card_builder=broken) as store:
        card = store.get_run(1).model_card
    assert card == {**minimal_card({"model": "mlp"}), "reconstruct_error": "KeyError: 'mlp'"}


def test_migration_is_one_transaction(v1_path: Path) -> None:
    """Stopped half-way (Ctrl-C while building the fifth card), the store stays schema 1,
    exactly as it was, and the next open migrates it."""
    before = raw_rows(v1_path)
    built = []

    def interrupted(config: dict) -> dict:
        built.append(config["model"])
        if len(built) == 5:
            raise KeyboardInterrupt
        return fake_card(config)

    with pytest.raises(KeyboardInterrupt):
        Store(v1_path, card_builder=interrupted)
    assert raw_rows(v1_path) == before
    with Store(v1_path, card_builder=fake_card) as store:
        assert len(store.list_runs()) == 9
    assert dict(raw_rows(v1_path)["meta"])["schema_version"] == "2"


def test_two_openers_of_a_v1_store_migrate_it_once(v1_path: Path) -> None:
    calls: list[str] = []
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def open_store() -> None:
        try:
            start.wait()
            with Store(v1_path, card_builder=lambda c: calls.append(c["model"]) or fake_card(c)):
                pass
        except BaseException as exc:  # reported below, on the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert len(calls) == 9  # one card per run: the second opener found schema 2


def test_read_only_v1_store_is_read_as_if_migrated_and_left_unchanged(v1_path: Path) -> None:
    before = v1_path.read_bytes()
    with Store(v1_path, read_only=True, card_builder=fake_card) as store:
        runs = store.list_runs()
        assert store.schema_version == 1
        assert [run.model_card for run in runs] == [fake_card(run.config) for run in runs]
        assert all(run.fingerprint is None for run in runs)
        assert store.find_completed(runs[0].config_hash) == runs[0]
        assert store.find_completed(runs[0].config_hash, fingerprint="0123456789abcdef") is None
        stored_epochs = [row for row in raw_rows(v1_path)["epochs"] if row[0] == 1]
        assert [e["epoch"] for e in store.epochs(1)] == [row[1] for row in stored_epochs] != []
        with pytest.raises(StoreError, match="read-only"):
            store.start_run(CONFIG, "h", {})
    assert v1_path.read_bytes() == before
    assert dict(raw_rows(v1_path)["meta"])["schema_version"] == "1"


# ------------------------------------------------------------------------ schema 2 API


def test_start_run_records_card_fingerprint_and_the_workers_identity(tmp_path: Path) -> None:
    card = {**fake_card(CONFIG), "fingerprint": "from-the-card"}
    with Store(tmp_path / "s.sqlite", card_builder=fake_card) as store:
        explicit = store.start_run(
            CONFIG, "h", {}, card, fingerprint="abc", started_at="2026-01-02T03:04:05.006+00:00",
            hostname="node-7", pid=4242,
        )  # fmt: skip
        from_card = store.start_run(CONFIG, "h", {}, card)
        no_card = store.start_run(CONFIG, "h", {})
        run = store.get_run(explicit)
        assert (run.model_card, run.fingerprint) == (card, "abc")
        assert (run.started_at, run.hostname, run.pid) == (
            "2026-01-02T03:04:05.006+00:00", "node-7", 4242,
        )  # fmt: skip
        assert store.get_run(from_card).fingerprint == "from-the-card"
        assert store.get_run(no_card).model_card == fake_card(CONFIG)
        assert store.get_run(no_card).fingerprint is None
        with pytest.raises(ValueError, match="model_card"):
            store.start_run(CONFIG, "h", {}, {})


def test_find_completed_with_a_fingerprint_matches_only_that_fingerprint(tmp_path: Path) -> None:
    with Store(tmp_path / "s.sqlite", card_builder=fake_card) as store:
        old = store.start_run(CONFIG, "h", {})  # no fingerprint (like a migrated run)
        store.finish_run(old, "finished")
        a = store.start_run(CONFIG, "h", {}, fingerprint="aaaa")
        store.finish_run(a, "finished")
        b = store.start_run(CONFIG, "h", {}, fingerprint="bbbb")
        store.finish_run(b, "failed")
        assert store.find_completed("h").run_id == a
        assert store.find_completed("h", fingerprint="aaaa").run_id == a
        assert store.find_completed("h", fingerprint="bbbb") is None  # only a failed run
        assert store.find_completed("h", fingerprint="cccc") is None
        assert store.find_completed("other", fingerprint="aaaa") is None


def test_the_cli_gives_a_v1_store_the_registrys_cards(v1_path, monkeypatch, tmp_path) -> None:
    """The store never imports the model registry; the CLI installs the registry's card
    builder at its start, so a v1 store opened by a command gets full reconstructed cards."""
    from mnistbench.cli import main

    monkeypatch.setattr(schema, "_installed_card_builder", None)  # as a fresh process has it
    out = tmp_path / "runs.jsonl"
    assert main(["export", "--store", str(v1_path), "--format", "jsonl", "--out", str(out)]) == 0
    cards = [json.loads(line)["model_card"] for line in out.read_text().splitlines()]
    assert len(cards) == 9 and {c["source"]["kind"] for c in cards} == {"reconstructed"}
    mlp = next(c for c in cards if c["model"] == "mlp")
    assert (mlp["family"], mlp["recipe"]["of"]) == ("mlp", "mlp")
