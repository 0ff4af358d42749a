"""Merged data is data (issue 26): every record is checked against the run format before it is
written, nothing named by stored data is run, every output escapes what mnistbench did not
write, reading verbs open read-only stores, and the CLI's edges answer in one paragraph."""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

import pytest

from mnistbench.cli import main
from mnistbench.config import RunConfig
from mnistbench.escape import csv_cell, markdown_cell, safe_url, terminal
from mnistbench.report.document import Document, Paragraph, Section, Table, to_html, to_markdown
from mnistbench.store import Store, export_jsonl
from mnistbench.store.schema_records import LINE_MAX_BYTES
from run_configs import real_config
from unwritable import unwritable

QUICK = ["--epochs", "1", "--val-size", "100", "--quiet"]
PAYLOAD = """
from pathlib import Path
Path({marker!r}).write_text("the payload ran")


def f(num_classes=10):
    raise SystemExit("never reached")
"""


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def clean_error(code: int, err: str, *phrases: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err and err.startswith("mnistbench: error: ")
    for phrase in phrases:
        assert phrase in err, f"{phrase!r} not in {err!r}"


def card(config: dict) -> dict:
    return {"card_version": 1, "model": config["model"], "source": {"kind": "test"}}


def make_store(path: Path, models: tuple[str, ...] = ("mlp", "cnn")) -> Path:
    """Finished runs with real configs and hashes, recorded without training."""
    with Store(path, card_builder=card) as store:
        for seed, model in enumerate(models):
            config, config_hash = real_config(model, seed=seed)
            run_id = store.start_run(config, config_hash, {"device": "cpu"})
            store.log_epoch(run_id, 1, {"train_loss": 0.5, "test_accuracy": 0.9})
            store.add_artefact(run_id, "confusion_matrix", "json", "[[1, 0], [0, 1]]")
            store.finish_run(run_id, "finished", {"test_accuracy": 0.9, "params": 10})
    return path


def exported_lines(path: Path) -> list[dict]:
    with Store(path, read_only=True) as store:
        return [json.loads(line) for line in export_jsonl(store)]


def write_lines(path: Path, lines: list) -> Path:
    path.write_text(
        "".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines),
        encoding="utf-8",
    )
    return path


def rehash(line: dict) -> dict:
    line["config_hash"] = RunConfig.from_dict(line["config"]).config_hash()
    return line


# ------------------------------------------------------------------ no code from stored data


@pytest.mark.parametrize("recompute_hash", [False, True])
def test_a_poisoned_record_never_runs_its_payload(
    capsys, learnable_data_dir: Path, tmp_path: Path, recompute_hash: bool
) -> None:
    """Export a real run, point its config.model at a payload file that would write a marker,
    merge it, run the ordinary configuration and report: the marker never appears. With the
    original hash kept, the merge is refused (the hash is not the config's); with the hash
    recomputed, the record merges (it is a valid record of an outside model) but is never
    reused for the ordinary config and its model is never imported."""
    data = ["--data-dir", str(learnable_data_dir)]
    origin, target = tmp_path / "origin.sqlite", tmp_path / "target.sqlite"
    assert run_cli(capsys, "run", "mlp", *data, "--store", str(origin), *QUICK)[0] == 0
    export = tmp_path / "runs.jsonl"
    assert run_cli(capsys, "export", "--store", str(origin), "--format", "jsonl",
                   "--out", str(export))[0] == 0  # fmt: skip
    marker = tmp_path / "PWNED"
    payload = tmp_path / "payload.py"
    payload.write_text(PAYLOAD.format(marker=str(marker)))
    (line,) = [json.loads(text) for text in export.read_text().splitlines()]
    line["config"]["model"] = line["model"] = line["model_card"]["model"] = f"{payload}:f"
    if recompute_hash:
        rehash(line)
    write_lines(export, [line])

    code, _, err = run_cli(capsys, "merge", str(export), "--store", str(target))
    if recompute_hash:
        assert code == 0 and "1 run(s) copied" in err
    else:
        clean_error(code, err, "line 1", "is not the hash of its config", "--skip-invalid")
        assert not target.exists() or Store(target, read_only=True).list_runs() == []
    code, out, _ = run_cli(capsys, "run", "mlp", *data, "--store", str(target), *QUICK)
    assert code == 0 and "already in the store" not in out  # trained: the row is not mlp's
    assert run_cli(capsys, "report", "--store", str(target))[0] == 0
    assert run_cli(capsys, "report", "--store", str(target), "--out", str(tmp_path / "r"))[0] == 0
    assert not marker.exists()
    if recompute_hash:  # shown as data, never imported
        html = (tmp_path / "r" / "index.html").read_text()
        assert "payload.py:f" in html


def test_a_row_edited_in_the_store_is_neither_run_nor_reused(
    capsys, learnable_data_dir: Path, tmp_path: Path
) -> None:
    """The same trick done in the SQLite file itself (no merge to refuse it): the row keeps
    the ordinary hash, its config names the payload. `run` refuses to reuse it (exit 2, what
    to do), `store check` names it, and the payload never runs."""
    data = ["--data-dir", str(learnable_data_dir)]
    store = tmp_path / "s.sqlite"
    assert run_cli(capsys, "run", "mlp", *data, "--store", str(store), *QUICK)[0] == 0
    marker, payload = tmp_path / "PWNED", tmp_path / "payload.py"
    payload.write_text(PAYLOAD.format(marker=str(marker)))
    with sqlite3.connect(store) as conn:
        (config_json,) = conn.execute("SELECT config_json FROM runs").fetchone()
        config = {**json.loads(config_json), "model": f"{payload}:f"}
        conn.execute("UPDATE runs SET config_json = ?", (json.dumps(config),))
    code, _, err = run_cli(capsys, "run", "mlp", *data, "--store", str(store), *QUICK)
    clean_error(code, err, "is filed under config_hash", "edited after the run", "--force")
    code, out, _ = run_cli(capsys, "store", "check", "--store", str(store))
    assert code == 1 and "is not the hash of its config" in out
    assert not marker.exists()


# ------------------------------------------------------------------ invalid records

DEEP = "__100000 brackets__"  # json.dumps cannot write it; the test puts it in the text


def _set(path: str, value: object):
    def edit(line: dict) -> dict:
        *parents, last = path.split(".")
        target = line
        for key in parents:
            target = target[int(key)] if key.isdigit() else target[key]
        target[last] = value
        return line

    return edit


# (what, how the line is edited, a phrase of the answer). Every one of them was a traceback,
# a report that crashed afterwards, or a silently accepted record before issue 26.
INVALID = [
    ("recipe as text", _set("model_card.recipe", "x"), "model_card.recipe"),
    ("epochs as text", lambda x: rehash(_set("config.epochs", "5")(x)), "config.epochs"),
    ("model_options as text", _set("config.model_options", "beta=4"), "config.model_options"),
    ("300-char dataset", _set("dataset", "d" * 300), "dataset"),
    ("hostname as object", _set("hostname", {"x": 1}), "hostname"),
    ("integer beyond 64 bits", _set("metrics.flops_per_sample", 2**70), "beyond 64 bits"),
    ("lone surrogate", _set("environment.device", "\ud800"), "lone surrogate"),
    ("deep nesting", _set("environment.deep", DEEP), "not JSON this reader accepts"),
    ("nesting past the format", _set("environment.deep", [[[[[[[[[[[[1]]]]]]]]]]]]), "deeper"),
    ("NaN", _set("metrics.test_accuracy", float("nan")), "finite"),
    ("accuracy above 1", _set("metrics.test_accuracy", 3.5), "not a fraction"),
    ("unknown config key", _set("config.evil", 1), "config.evil"),
    ("forged hash", _set("config_hash", "0123456789abcdef"), "is not the hash of its config"),
    ("newer format", _set("format_version", 99), "newer than this mnistbench"),
    ("bad base64", _set("artefacts", [{"name": "a", "kind": "bin", "base64": "@@"}]), "base64"),
    ("control chars in name", _set("hostname", "a\x1b[2Jb"), "control characters"),
    ("status running", _set("status", "running"), "status"),
    ("epoch 0", _set("epochs.0.epoch", 0), "epochs.0.epoch"),
    ("bad CI", _set("metrics.test_accuracy_ci95", [0.9, 0.1]), "low end is above"),
    ("bad weights hash", _set("metrics.weights_sha256", "zz"), "weights_sha256"),
]


@pytest.mark.parametrize(("what", "edit", "phrase"), INVALID, ids=[i[0] for i in INVALID])
def test_an_invalid_line_is_refused_whole_file_or_skipped(
    capsys, tmp_path: Path, what: str, edit, phrase: str
) -> None:
    good, other = exported_lines(make_store(tmp_path / "origin.sqlite"))
    export = tmp_path / "runs.jsonl"
    bad = edit(json.loads(json.dumps(other)))
    text = json.dumps(bad, allow_nan=True).replace(json.dumps(DEEP), "[" * 100_000 + "]" * 100_000)
    write_lines(export, [good, text])
    target = tmp_path / "target.sqlite"
    code, _, err = run_cli(capsys, "merge", str(export), "--store", str(target))
    clean_error(code, err, f"{export}, line 2", phrase, "nothing was merged")
    with Store(target, read_only=True) as store:
        assert store.list_runs() == []  # all or nothing: the good line 1 is not kept either
    code, _, err = run_cli(capsys, "merge", str(export), "--store", str(target), "--skip-invalid")
    assert code == 0 and "1 run(s) copied" in err and "line 2" in err and phrase in err
    assert "Traceback" not in err
    assert run_cli(capsys, "report", "--store", str(target))[0] == 0


def test_junk_lines_are_answered_by_line_and_a_huge_line_is_not_read_whole(
    capsys, tmp_path: Path
) -> None:
    (good,) = exported_lines(make_store(tmp_path / "origin.sqlite", ("mlp",)))
    huge = json.dumps({**good, "model": "m" * (LINE_MAX_BYTES + 10)})
    export = tmp_path / "runs.jsonl"
    export.write_bytes(
        b"not json\n" + b"\xff\xfe\n" + b"[1, 2]\n" + b"9" * 5000 + b"\n" + huge.encode() + b"\n"
        + json.dumps(good).encode() + b"\n"
    )  # fmt: skip
    code, _, err = run_cli(capsys, "merge", str(export), "--store", str(tmp_path / "t.sqlite"),
                           "--skip-invalid")  # fmt: skip
    assert code == 0 and "1 run(s) copied" in err and "5 invalid record(s) left out" in err
    problems = {
        int(line.split(", line ")[1].split(":")[0]): line.split(": ", 1)[1]
        for line in err.splitlines()
        if ", line " in line
    }
    assert sorted(problems) == [1, 2, 3, 4, 5]
    assert problems[1].startswith("it is not JSON (Expecting value")
    assert problems[2] == "the line is not UTF-8 text"
    assert "not an mnistbench run" in problems[3]
    assert problems[4] == "it is not JSON this reader accepts (ValueError)"  # 5,000 digits
    assert problems[5] == "the line is longer than 4 MiB"


def test_a_store_with_an_invalid_row_is_one_paragraph_everywhere(capsys, tmp_path: Path) -> None:
    """A store written by hand: report and merge answer clearly (exit 2), store check names the
    row (exit 1), recover copies the valid runs."""
    path = make_store(tmp_path / "s.sqlite")
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE runs SET config_json = ? WHERE run_id = 2", ('{"model": 5}',))
    code, _, err = run_cli(capsys, "report", "--store", str(path))
    clean_error(code, err, "run 2 of the store", "config.model", "store recover")
    code, _, err = run_cli(capsys, "merge", str(path), "--store", str(tmp_path / "t.sqlite"))
    clean_error(code, err, "run 2", "config.model", "--skip-invalid")
    code, out, _ = run_cli(capsys, "store", "check", "--store", str(path))
    assert code == 1 and "records: 1 run(s) break the run format" in out and "run 2:" in out
    fixed = tmp_path / "fixed.sqlite"
    assert run_cli(capsys, "store", "recover", "--store", str(path), "--out", str(fixed))[0] == 0
    with Store(fixed, read_only=True) as store:
        assert [r.run_id for r in store.list_runs()] == [1]


def test_records_of_the_other_branches_shared_names_are_accepted(tmp_path: Path) -> None:
    """Predictions artefacts (binary, a few hundred KB of base64), evaluations (JSON) and the
    shared metric names (HELPERS.md) pass the format."""
    (line,) = exported_lines(make_store(tmp_path / "origin.sqlite", ("mlp",)))
    import base64
    import os

    line["metrics"].update(
        test_accuracy_ci95=[0.97, 0.99], n_test=10000, weights_sha256="ab" * 32,
        weights_format="safetensors", weights_bytes=2_140_000,
    )  # fmt: skip
    line["artefacts"] += [
        {"name": "predictions_final", "kind": "predictions", "created_at": "t",
         "base64": base64.b64encode(os.urandom(300_000)).decode()},
        {"name": "evaluation_corruptions", "kind": "evaluation", "created_at": "t",
         "text": json.dumps({"fog": 0.5})},
    ]  # fmt: skip
    export = write_lines(tmp_path / "runs.jsonl", [line])
    with Store(tmp_path / "t.sqlite") as store:
        from mnistbench.store import read_runs

        assert store.import_runs(read_runs(export)) == (1, 0, ())
        (run,) = store.list_runs()
        assert run.metrics["test_accuracy_ci95"] == [0.97, 0.99]
        kinds = [a.kind for a in store.artefacts(run.run_id)]
        assert kinds == ["json", "predictions", "evaluation"]


# ------------------------------------------------------------------ escaping at every output

HOSTILE = [
    "[click](javascript:alert(1))",
    "[x](JaVaScRiPt:alert(1))",
    "[x]( java\tscript:alert(1))",
    "[x](data:text/html;base64,PHNjcmlwdD4=)",
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "name\n# injected heading\n| a | b |",
    "pipe | in | name",
    "\x1b[31mred\x1b[0m\x1b]0;title\x07\x07",
]


def test_hostile_text_is_escaped_in_markdown_html_terminal_and_csv() -> None:
    table = Table(["model", "note"], [[text, text] for text in HOSTILE], caption=HOSTILE[0])
    document = Document(
        "t", [Paragraph(text) for text in HOSTILE], [Section("s", HOSTILE[6], [table])]
    )
    html = to_html(document)
    assert "javascript:" not in html.lower().replace("(javascript:", "")  # shown, never a link
    assert 'href="javascript' not in html.lower() and 'href="data:' not in html.lower()
    assert "<script>alert" not in html and "<img src=x" not in html and "\x1b" not in html
    markdown = to_markdown(document)
    assert "<script>" not in markdown and "<img" not in markdown and "\x1b" not in markdown
    assert "\n# injected" not in markdown
    rows = [line for line in markdown.splitlines() if line.startswith("| ")]
    assert len(rows) == 2 + len(HOSTILE)  # header, rule, one line per row: no row broken
    assert all(line.count(" | ") == 1 for line in rows)  # two cells each: pipes escaped
    assert "](javascript:" not in markdown.lower() and "](data:" not in markdown
    assert terminal(HOSTILE[-1]) == "red"
    assert markdown_cell("a\nb|c") == "a b\\|c"
    assert [csv_cell(v) for v in ("=HYPERLINK(1)", "+1", "-1", "@SUM", "ok", -1.5)] == [
        "'=HYPERLINK(1)", "'+1", "'-1", "'@SUM", "ok", -1.5,
    ]  # fmt: skip
    assert [safe_url(u) for u in ("https://a.b/c", "#study-a", "figures/x.png", "mailto:x")] == [
        "https://a.b/c", "#study-a", "figures/x.png", None,
    ]  # fmt: skip


def test_a_merged_hostile_model_name_is_inert_in_every_output(capsys, tmp_path: Path) -> None:
    """End to end: a valid record (hash recomputed) whose model is a script tag and a
    javascript link, whose error has ANSI codes and whose hostname starts a formula."""
    (line,) = exported_lines(make_store(tmp_path / "origin.sqlite", ("mlp",)))
    name = "<script>alert(1)</script>[x](javascript:alert(2))"
    line["config"]["model"] = line["model"] = line["model_card"]["model"] = name
    line["hostname"] = '=HYPERLINK("http://evil")'
    line["error"] = "\x1b[2J\x1b]0;owned\x07boom"
    export = write_lines(tmp_path / "runs.jsonl", [rehash(line)])
    store = tmp_path / "t.sqlite"
    assert run_cli(capsys, "merge", str(export), "--store", str(store))[0] == 0
    out_dir = tmp_path / "report"
    assert run_cli(capsys, "report", "--store", str(store), "--out", str(out_dir))[0] == 0
    html = (out_dir / "index.html").read_text()
    markdown = (out_dir / "report.md").read_text()
    assert "<script>alert(1)" not in html and 'href="javascript' not in html.lower()
    assert "<script>" not in markdown and "](javascript:" not in markdown
    code, out, _ = run_cli(capsys, "report", "--store", str(store))
    assert code == 0 and "\x1b" not in out
    csv_path = tmp_path / "runs.csv"
    assert run_cli(capsys, "export", "--store", str(store), "--out", str(csv_path))[0] == 0
    assert ",=HYPERLINK" not in csv_path.read_text() and "'=HYPERLINK" in csv_path.read_text()
    assert "\x1b" not in csv_path.read_text()


# ------------------------------------------------------------------ read-only stores


def test_reading_verbs_open_a_store_they_cannot_write(capsys, tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    path = make_store(folder / "s.sqlite")
    before = path.read_bytes()
    with unwritable(path, folder):
        assert run_cli(capsys, "report", "--store", str(path))[0] == 0
        code, out, _ = run_cli(capsys, "report", "--store", str(path), "--view", "zoo-small")
        assert code == 0
        for fmt in ("csv", "json", "jsonl"):
            code, out, err = run_cli(capsys, "export", "--store", str(path), "--format", fmt,
                                     "--out", "-")  # fmt: skip
            assert code == 0 and out, err
        assert run_cli(capsys, "store", "check", "--store", str(path))[0] == 0
    assert path.read_bytes() == before


# ------------------------------------------------------------------ CLI edges and model files


def test_cli_edges_are_refused_before_anything_trains(capsys, tmp_path: Path) -> None:
    store = tmp_path / "s.sqlite"
    cases = [
        (["--executor", "local", "--workers", "2"], "would ignore --workers"),
        (["--subset", "1000000000000000"], "has only 60,000 training images"),
        (["--val-size", "99999999"], "Invalid --val-size 99,999,999"),
    ]
    for extra, phrase in cases:
        code, _, err = run_cli(capsys, "run", "mlp", "--store", str(store), *extra)
        clean_error(code, err, phrase)
    assert not store.exists()  # nothing recorded, not even a store


def test_a_failed_dry_run_says_why(capsys, learnable_data_dir: Path) -> None:
    model = f"{Path(__file__).parent / 'failing_nets.py'}:breaks_while_training"
    code, out, _ = run_cli(capsys, "run", model, "--data-dir", str(learnable_data_dir),
                           "--dry-run", "--quiet")  # fmt: skip
    assert code == 1 and "failed: " in out and "breaks on its second training step" in out
    assert "nothing recorded" in out


@pytest.mark.parametrize(
    ("source", "phrases"),
    [
        ("import sys\nsys.exit(3)\n", ("calls sys.exit(3)", 'if __name__ == "__main__"')),
        ("raise KeyboardInterrupt\n", ("was interrupted", "Nothing was trained or recorded")),
        (
            "def f(num_classes=10):\n    raise SystemExit(4)\n",
            ("its factory called sys.exit(4)",),
        ),
    ],
    ids=["sys.exit at import", "KeyboardInterrupt at import", "sys.exit in the factory"],
)
def test_a_model_file_that_exits_or_interrupts_is_one_paragraph(
    capsys, tmp_path: Path, source: str, phrases: tuple[str, ...]
) -> None:
    path = tmp_path / "user_model.py"
    path.write_text(source + "\n\ndef g(num_classes=10):\n    pass\n")
    store = tmp_path / "s.sqlite"
    code, _, err = run_cli(capsys, "run", f"{path}:f", "--store", str(store), "--quiet")
    clean_error(code, err, *phrases)
    assert "recorded as 'interrupted'" not in err
    assert not store.exists() or Store(store, read_only=True).list_runs() == []
    sys.modules.pop("user_model", None)


# ------------------------------------------------------------------ Ray


class RecordingRay:
    def __init__(self) -> None:
        self.calls: list[dict] = []

    def is_initialized(self) -> bool:
        return False

    def init(self, **kwargs) -> None:
        self.calls.append(kwargs)


def test_ray_starts_its_own_loopback_instance_and_ignores_ray_address(monkeypatch) -> None:
    from mnistbench.experiments.ray_cluster import connect

    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.9:6379")
    ray = RecordingRay()
    assert connect(ray, None, init_kwargs=None, ship_package=False)
    (call,) = ray.calls
    # "local": Ray starts a new instance and reads neither RAY_ADDRESS nor the latest
    # `ray start` (ray._private.services.canonicalize_bootstrap_address in Ray 2.60)
    assert call["address"] == "local" and call["_node_ip_address"] == "127.0.0.1"
    ray = RecordingRay()
    connect(ray, "auto", init_kwargs=None, ship_package=False)
    assert ray.calls[0]["address"] == "auto" and "_node_ip_address" not in ray.calls[0]


def test_ray_address_auto_is_stated_in_help(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["sweep", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "or auto: the cluster RAY_ADDRESS" in text and "ignores RAY_ADDRESS" in text
    assert "bound to 127.0.0.1" in text
