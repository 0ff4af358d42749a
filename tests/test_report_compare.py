"""What a report says about a run comes from its model card, and a run is set against a published
figure only on the same dataset, at the closest setting, and never when it is smaller."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from mnistbench.experiments.configure import make_config
from mnistbench.report import energy
from mnistbench.report.build import build_document
from mnistbench.report.collect import ReportData, load
from mnistbench.report.columns import COLUMNS
from mnistbench.report.compare import compare, published_text, settings_vs_recipe
from mnistbench.report.document import to_markdown
from mnistbench.store import RunRecord, Store
from test_report import _row, _table

# That report/ never imports the models, the config or the experiments is the import-linter
# contract "report-reads-the-store" in pyproject.toml (tests/test_layers.py runs it).


# ----------------------------------------------------------------- a card with study C's grid

STUDY_C = [  # (dataset, epochs, pin_memory, optimizer, lr, resnet18 accuracy), as SPECS.md
    ("mnist", 3, False, "sgd", 1e-3, 0.9889),
    ("mnist", 3, False, "adam", 1e-4, 0.9913),
    ("mnist", 5, False, "sgd", 1e-3, 0.9933),
    ("mnist", 5, False, "adam", 1e-3, 0.9907),
    ("mnist", 5, True, "adam", 1e-4, 0.9912),
    ("fashion-mnist", 3, False, "sgd", 1e-3, 0.9008),
    ("fashion-mnist", 3, False, "adam", 1e-4, 0.8975),
    ("fashion-mnist", 5, False, "sgd", 1e-3, 0.9059),
    ("fashion-mnist", 5, False, "adam", 1e-4, 0.9122),
    ("fashion-mnist", 5, True, "adam", 1e-3, 0.9154),
]


def resnet18_card() -> dict:
    """A card as contract 2 gives it, with study C's ten ResNet-18 figures."""
    defaults = make_config("resnet18").to_dict()
    for key in ("model", "device", "seed"):
        defaults.pop(key)
    figures = [
        {
            "study": "C",
            "model": "resnet18",
            "dataset": dataset,
            "setting": {"epochs": epochs, "pin_memory": pin, "optimizer": opt, "lr": lr},
            "setting_text": f"{epochs} epochs, {opt} {lr:g}" + (", pin_memory" if pin else ""),
            "test_accuracy": accuracy,
            "protocol": "final",
            "time_per_epoch_s": None,
            "time_device": None,
            "time_includes_eval": False,
            "params": 11_181_642,
            "best_epoch": None,
            "epochs_to_target": None,
            "target_accuracy": None,
            "note": "",
        }
        for dataset, epochs, pin, opt, lr, accuracy in STUDY_C
    ]
    return {
        "card_version": 1,
        "model": "resnet18",
        "family": "resnet",
        "architecture": "ResNet-18 as stored in the card",
        "source": {"kind": "registered", "spec": None, "sha256": None, "distribution": None},
        "recipe": {"of": "resnet18", "defaults": defaults, "stages": [], "headline_stage": "train"},
        "setting_roles": {"epochs": "scale", "subset": "scale", "val_size": "scale",
                          "target_accuracy": "analysis", "device": "environment"},
        "published": figures,
        "studies": {"C": {"title": "ResNets and SVMs", "doc": "docs/studies.md#study-c",
                          "protocol": "final"}},
        "measurement": {"version": 2, "methods": {}},
    }  # fmt: skip


def _config(**overrides) -> dict:
    return make_config("resnet18", **overrides).to_dict()


@pytest.mark.parametrize(
    ("overrides", "accuracy", "differences"),
    [
        ({}, 0.9933, ()),  # the recipe is study C's best MNIST run
        ({"epochs": 3, "optimizer": "adam", "lr": 1e-4}, 0.9913, ()),
        # pin_memory is no run setting: the one Adam 1e-4 5-epoch figure is the closest
        ({"optimizer": "adam", "lr": 1e-4}, 0.9912, ()),
        ({"dataset": "fashion-mnist", "optimizer": "adam", "lr": 1e-3}, 0.9154, ()),
        # two figures differ in one setting each: the first the study gives wins
        ({"lr": 1e-4}, 0.9933, ("lr=0.0001 (study: 0.001)",)),
        ({"precision": "bf16"}, 0.9933, ("precision=bf16",)),
    ],
)
def test_a_run_meets_the_figure_of_its_dataset_and_closest_setting(
    overrides: dict, accuracy: float, differences: tuple
) -> None:
    comparison = compare(_config(**overrides), resnet18_card())
    assert comparison.comparable and comparison.choices == 5
    assert comparison.figure is not None and comparison.figure["test_accuracy"] == accuracy
    assert comparison.figure["dataset"] == overrides.get("dataset", "mnist")
    assert comparison.differences == differences
    assert comparison.study_setting == all(d.startswith("precision=") for d in differences)


def test_a_smaller_run_is_never_compared() -> None:
    card = resnet18_card()
    short = compare(_config(epochs=1), card)
    assert not short.comparable and short.figure is None
    assert short.not_comparable() == "not comparable (1 of 3 epochs)"  # the closest setting: 3
    quick = compare(_config(subset=2000, epochs=1), card)
    assert quick.not_comparable() == "not comparable (subset 2000, 1 of 3 epochs)"
    assert published_text(quick, card) == "not comparable (subset 2000, 1 of 3 epochs)"
    # more epochs than any figure is comparable, and the difference is said
    longer = compare(_config(epochs=10), card)
    assert longer.comparable and longer.differences == ("epochs=10 (study: 5)",)
    text = published_text(longer, card)
    assert text.startswith("99.33% ([study C](docs/studies.md#study-c); 5 epochs, sgd 0.001;")
    assert text.endswith("closest of 5 settings); differs: epochs=10 (study: 5)")


def test_settings_are_read_against_the_recipe_in_the_card() -> None:
    card = resnet18_card()
    assert settings_vs_recipe(_config(), card) == "recipe"
    # the target does not change training; a quick look is never "recipe"
    assert settings_vs_recipe(_config(target_accuracy=0.5), card) == "recipe"
    assert settings_vs_recipe(_config(subset=2000, epochs=1), card) == "epochs=1, subset=2000"
    # a recipe changed in the code since: the card's recipe still decides
    card["recipe"]["defaults"]["optimizer"] = "adam"
    assert settings_vs_recipe(_config(), card) == "optimizer=sgd"
    assert settings_vs_recipe(_config(), {"model": "x"}) == "— (recipe not recorded)"


# ------------------------------------------------------------------- the report, from cards


def _with_cards(data: ReportData, cards_by_model: dict[str, dict]) -> ReportData:
    """The loaded runs carrying these cards, as runs recorded with them will (contract 2)."""
    for run in [*data.runs, *data.not_finished]:
        if run.model in cards_by_model:
            run.model_card = copy.deepcopy(cards_by_model[run.model])
    return data


def _record(store: Store, config, honest: float, env: dict | None = None) -> None:
    run_id = store.start_run(config.to_dict(), config.config_hash(), env or {"device": "cpu"})
    store.finish_run(
        run_id,
        "finished",
        {"test_accuracy": honest, "test_accuracy_at_best_val": honest, "params": 11_181_642},
    )


def test_study_c_rows_each_meet_their_own_setting(tmp_path: Path) -> None:
    with Store(tmp_path / "s.sqlite") as store:
        _record(store, make_config("resnet18", precision="bf16"), 0.9928)
        _record(store, make_config("resnet18", epochs=3, optimizer="adam", lr=1e-4), 0.9902)
        _record(store, make_config("resnet18", dataset="fashion-mnist", optimizer="adam"), 0.9088)
        _record(store, make_config("resnet18", subset=2000, epochs=1), 0.41)
        data = _with_cards(load(store), {"resnet18": resnet18_card()})
    markdown = to_markdown(build_document(data, None), figures=False)
    study_c = _table(markdown, "### Study C: ResNets and SVMs")
    # our three, and the other study C models not run, on each data set the study published
    models = sorted(row[0] for row in study_c[1:])
    assert models == ["resnet18"] * 3 + ["resnet50"] * 2 + ["svm_poly"] * 2 + ["svm_rbf"] * 2
    bf16 = _row(study_c, Model="resnet18", **{"Settings (vs recipe)": "precision=bf16"})
    assert bf16["Published acc"] == "99.33%" and bf16["Architecture"].endswith("in the card")
    assert bf16["Published setting"].endswith("closest of 5 settings); differs: precision=bf16")
    # one seed 0.05 pt under the published run: well inside its test-sampling interval
    met = bf16[COLUMNS["met"].title]
    assert met.startswith("consistent (-0.05 pt; one-run 95% PI ") and met.endswith("[final]")
    adam = _row(study_c, Model="resnet18", Dataset="mnist", **{"Epochs (published)": "3 (3)"})
    assert adam["Published acc"] == "99.13%" and adam["Honest − published"] == "-0.11 pt"
    fashion = _row(study_c, Model="resnet18", Dataset="fashion-mnist")
    assert fashion["Published acc"] == "91.54%"
    # the quick look is in no study table, and nowhere called "recipe"
    quick = _row(_table(markdown, "## Quick looks"), Model="resnet18")
    assert quick["Published"] == "not comparable (subset 2000, 1 of 3 epochs)"
    assert quick["Settings (vs recipe)"] == "epochs=1, subset=2000"
    runs = _table(markdown, "## All finished runs")
    assert _row(runs, Run="4")["Published (same dataset, closest setting)"].startswith(
        "not comparable"
    )


def test_the_readme_quick_look_fills_no_published_row(tmp_path: Path) -> None:
    """`suite architecture-showdown --subset 2000 --epochs 1`: no MicroResNet at -86 points
    called "recipe" in the published tables."""
    with Store(tmp_path / "s.sqlite") as store:
        _record(store, make_config("microresnet", subset=2000, epochs=1), 0.1315)
        markdown = to_markdown(build_document(load(store), None), figures=False)
    study_a = _table(markdown, "### Study A")
    assert _row(study_a, Model="microresnet")["Settings (vs recipe)"] == "not run yet"
    assert "-86" not in markdown and "13.15%" in markdown
    quick = _row(_table(markdown, "## Quick looks"), Model="microresnet")
    assert quick["Published"] == "not comparable (subset 2000, 1 of 5 epochs)"


def test_a_run_renders_from_its_card_when_the_code_no_longer_knows_it(tmp_path: Path) -> None:
    card = resnet18_card()
    card.update(model="tiny.py:tiny", family="outside", architecture="conv 1-4, FC 10")
    for figure in card["published"]:
        figure["model"] = "tiny.py:tiny"
    config = make_config("resnet18").to_dict() | {"model": "tiny.py:tiny"}
    with Store(tmp_path / "s.sqlite") as store:
        run_id = store.start_run(config, "a" * 16, {"device": "cpu"})
        store.finish_run(run_id, "finished", {"test_accuracy": 0.9940, "params": 40})
        data = _with_cards(load(store), {"tiny.py:tiny": card})
    markdown = to_markdown(build_document(data, None), figures=False)
    study_c = _table(markdown, "### Study C")
    row = _row(study_c, Model="tiny.py:tiny", Dataset="mnist")
    assert row["Architecture"] == "conv 1-4, FC 10" and row["Settings (vs recipe)"] == "recipe"
    assert row["Published acc"] == "99.33%"
    assert row[COLUMNS["met"].title].startswith("consistent (+0.07 pt; one-run 95% PI ")
    # its card's Fashion-MNIST figures make a row that says what is missing
    missing = _row(study_c, Model="tiny.py:tiny", Dataset="fashion-mnist")
    assert missing["Settings (vs recipe)"] == "not run yet"
    assert missing["Architecture"] == "conv 1-4, FC 10"


# ------------------------------------------------------------------------------ energy


def _run(metrics: dict) -> RunRecord:
    return RunRecord(1, "h", "mlp", "mnist", "finished", {}, {}, metrics, None, "", None)


@pytest.mark.parametrize(
    ("metrics", "measured"),
    [
        ({"energy_method": "codecarbon CPU(Cpu Load), RAM(tracking_mode='process')"}, False),
        ({"energy_method": "codecarbon CPU(AMD EPYC > 4W [generic]), RAM(...)"}, False),
        ({"energy_method": "codecarbon CPU(Intel Rapl)"}, True),
        ({"energy_method": "codecarbon GPU(NVIDIA H200)"}, True),
        ({"energy_method": "codecarbon CPU(Intel Rapl), RAM(...)"}, False),  # RAM is a model
        ({"energy_method": "something new"}, False),  # not known to be measured
        ({"energy_method": "codecarbon CPU(Cpu Load)", "energy_measured": True}, True),
        ({"energy_method": "codecarbon CPU(Intel Rapl)", "energy_measured": False}, False),
    ],
)
def test_energy_is_estimated_unless_a_counter_measured_it(metrics: dict, measured: bool) -> None:
    assert energy.is_measured(_run(metrics)) is measured


def test_energy_cells_say_measured_or_estimated_in_wh() -> None:
    runs = [_run({"energy_kwh": 5e-4, "energy_measured": m}) for m in (True, True)]
    assert energy.cell(runs) == "0.5 ± 0 Wh (measured)"
    runs[1].metrics["energy_measured"] = False  # one seed estimated: the pooled figure is too
    assert energy.cell(runs) == "≈ 0.5 ± 0 Wh (estimated)"
    assert energy.cell([_run({})]) == "—"
    assert energy.scope(_run({"energy_scope": "training only, this GPU"})) == (
        "training only, this GPU"
    )
