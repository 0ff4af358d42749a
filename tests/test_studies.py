"""The published figures: transcribed per study, dataset and setting, and looked up honestly."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from mnistbench.config import RunConfig
from mnistbench.models import list_models
from mnistbench.studies import (
    FIGURES,
    PROTOCOLS,
    STUDIES,
    closest_figure,
    published_figures,
    setting_differences,
    setting_text,
    studies_markdown,
)

ROOT = Path(__file__).resolve().parent.parent
# Setting keys a study states that have no RunConfig field (what the figure's note explains):
# study C's pin_memory, and its SVCs' 10,000 images (the sklearn_fit stage's fit_size option).
EXTRA_SETTING_KEYS = {"pin_memory", "fit_images"}


def test_resnet50_carries_study_c_ten_grid_figures():
    grid = [f for f in published_figures("resnet50") if f.setting.get("image_size") == 64]
    assert len(grid) == 10
    assert {f.dataset for f in grid} == {"mnist", "fashion-mnist"}
    sgd_3 = [
        f
        for f in grid
        if f.dataset == "mnist" and f.setting["epochs"] == 3 and f.setting["optimizer"] == "sgd"
    ]
    assert [f.test_accuracy for f in sgd_3] == [0.9870]
    fashion_best = max(
        (f for f in grid if f.dataset == "fashion-mnist"), key=lambda f: f.test_accuracy
    )
    assert fashion_best.test_accuracy == 0.9080 and fashion_best.setting["pin_memory"] is True


def test_study_a_times_of_the_pretrained_families():
    times = {
        m: published_figures(m, "mnist")[0].time_per_epoch_s
        for m in ("gan", "unet", "dbn", "beta_vae")
    }
    assert times == {"gan": 12.0, "unet": 13.0, "dbn": 8.0, "beta_vae": 6.0}
    assert published_figures("dbn")[0].time_measures == "fine-tune epoch"


def test_study_d_epochs_to_99_are_the_studys():
    to_99 = {
        m: published_figures(m)[0].epochs_to_target
        for m in ("small_cnn_v1", "small_cnn_v2", "small_cnn_bn")
    }
    assert to_99 == {"small_cnn_v1": 8, "small_cnn_v2": 6, "small_cnn_bn": 4}


def test_fashion_figures_are_per_dataset():
    assert [f.test_accuracy for f in published_figures("svm_rbf", "fashion-mnist")] == [0.8567]
    assert [f.test_accuracy for f in published_figures("svm_poly", "mnist")] == [0.9540]
    assert published_figures("mlp", "fashion-mnist") == []


def test_every_figure_names_a_registered_model_and_real_settings():
    registered = {info.name for info in list_models()}
    fields = {f.name for f in dataclasses.fields(RunConfig)}
    for figure in FIGURES:
        assert figure.model in registered, figure
        assert figure.study in STUDIES
        assert figure.protocol in PROTOCOLS
        assert set(figure.setting) <= fields | EXTRA_SETTING_KEYS, figure
        assert figure.test_accuracy is None or 0.5 < figure.test_accuracy < 1


def test_closest_figure_picks_the_setting_and_says_what_differs():
    recipe = {"epochs": 5, "optimizer": "sgd", "momentum": 0.9, "lr": 1e-3, "image_size": 64}
    recipe["batch_size"] = 16
    figure, differences = closest_figure(published_figures("resnet18", "mnist"), recipe)
    assert figure.test_accuracy == 0.9933 and differences == []

    adam_3 = {**recipe, "epochs": 3, "optimizer": "adam", "lr": 1e-4}
    figure, differences = closest_figure(published_figures("resnet50", "mnist"), adam_3)
    assert figure.test_accuracy == 0.9830 and differences == []

    # 3 epochs of Adam 1e-3 was not published: three settings differ from it in one key each
    # (SGD 3 epochs, Adam 1e-4 3 epochs, Adam 1e-3 5 epochs); the first listed wins the tie
    figure, differences = closest_figure(
        published_figures("resnet18", "mnist"), {**adam_3, "lr": 1e-3}
    )
    assert differences == ["optimizer"]
    assert figure.setting_text.startswith("3 epochs, SGD lr 1e-3")


def test_settings_a_run_does_not_have_are_not_differences():
    # every split lives on the device, so study C's pin_memory has nothing to change here
    assert setting_differences({"pin_memory": True, "epochs": 5}, {"epochs": 5}) == []
    assert setting_differences({"epochs": 5, "lr": 1e-3}, {"epochs": 3, "lr": 0.001}) == ["epochs"]


def test_ties_go_to_the_nearest_value():
    figures = published_figures("resnet18", "mnist")
    figure, differences = closest_figure(
        figures, {"epochs": 10, "optimizer": "sgd", "momentum": 0.9, "lr": 1e-3}
    )
    assert differences == ["epochs"] and figure.setting["epochs"] == 5


def test_setting_text_reads_like_the_studies_tables():
    assert setting_text({"epochs": 3, "optimizer": "sgd", "lr": 0.001}) == "3 epochs, SGD lr 1e-3"
    assert (
        setting_text({"epochs": 1, "image_size": 224, "device": "cuda"})
        == "1 epoch, 224x224, on GPU"
    )


def test_card_entries_serialise():
    figure = published_figures("small_cnn_bn")[0].to_dict()
    assert figure["setting"]["augment"] == "study_d_torchvision" and figure["best_epoch"] == 15
    assert figure["setting_text"].startswith("20 epochs, Adam lr 1e-3")
    assert STUDIES["D"].card_entry()["doc"] == "docs/studies.md#study-d"


@pytest.mark.parametrize("study", sorted(STUDIES))
def test_docs_page_has_every_study(study):
    assert f'<a id="study-{study.lower()}"></a>' in studies_markdown()


def test_docs_page_is_up_to_date():
    page = (ROOT / "docs" / "studies.md").read_text()
    assert page == studies_markdown(), (
        "docs/studies.md is stale: run `python -m mnistbench.studies > docs/studies.md`"
    )
