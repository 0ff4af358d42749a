"""Reload a run's kept model and score it again: clean accuracy, MNIST-C corruptions,
calibration and L-inf attacks (`mnistbench evaluate`), stored with the run as artefacts of kind
"evaluation" named "evaluation_<what>" (JSON).

`load_model(run_id, store)` rebuilds the run's model from its record (config, model options,
recipe), checks the architecture fingerprint against the record, reads the weights file
verified by SHA-256 (store/weights.py) and loads it without unpickling (models/weights.py).
The model scores images exactly as its run's last labelled stage did (the whole model under
the run's precision; a linear probe's head on the frozen features; LightGBM on them; the SVC's
libsvm votes), in batches of the same size, so the run's test accuracy comes back exactly
(tests/test_weights.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mnistbench.artefacts import (
    CORRUPTED_OUTCOMES,
    PREDICTIONS_KIND,
    CorruptedOutcomes,
    corrupted_outcomes_blob,
    labels_sha256,
)
from mnistbench.cards import architecture_fingerprint
from mnistbench.config import RunConfig
from mnistbench.data import get_dataset_spec, load_dataset, resize_images
from mnistbench.data.device import scaling_stats
from mnistbench.engine.attacks import EPSILONS, attack_accuracies
from mnistbench.engine.calibration import calibration
from mnistbench.engine.device import autocast_factory
from mnistbench.errors import ConfigError
from mnistbench.models import build_model, resolve_model
from mnistbench.models.weights import LightGBMText, restore_model
from mnistbench.recipes import get_stage_kind, stages_of
from mnistbench.recipes.kinds import EVAL_BATCH_SIZE
from mnistbench.store import RunRecord, Store
from mnistbench.store.weights import WeightsError, WeightsRef, read_weights

EVALUATIONS = ("corruptions", "calibration", "adversarial")
EVALUATION_KIND = "evaluation"  # artefact kind; names are "evaluation_<what>"
ADVERSARIAL_IMAGES = 1000  # the first N test images are attacked (PGD is 20 passes each)
CORRUPTION_SEED = 0  # one corrupted test set for every run, so runs compare image by image
# families scored through a surrogate gradient: the attack may be weaker than on a smooth net
SURROGATE_GRADIENT_FAMILIES = ("snn",)
# progress(evaluation, done, total): called as each step of an evaluation ends (each
# corruption; calibration and the attacks as one step each), so a caller can show where a
# minutes-long evaluation is
Progress = Callable[[str, int, int], None]


def _no_progress(evaluation: str, done: int, total: int) -> None:
    return None


@dataclass
class LoadedModel:
    """A run's model, ready to evaluate. `scores(pixels)` maps (B, 1, 28, 28) pixels in [0, 1]
    (before the model's own normalisation) to (B, classes) scores, differentiably where the
    model allows; `scorer` says which path the run's recorded test accuracy came from."""

    run: RunRecord
    config: RunConfig
    module: nn.Module
    scorer: str  # "logits" | "probe_head" | "lightgbm" | "svc"
    mean: float
    std: float
    probe: LightGBMText | None = None

    @property
    def device(self) -> torch.device:
        return torch.device(self.config.device)

    def _inputs(self, pixels: torch.Tensor) -> torch.Tensor:
        x = (pixels.to(self.device, torch.float32) - self.mean) / self.std
        return resize_images(x, self.config.image_size)

    def _features(self, x: torch.Tensor, autocast: Any) -> torch.Tensor:
        with autocast() if autocast is not None else nullcontext():
            return self.module.forward_features(x).float().flatten(1)

    def scores(self, pixels: torch.Tensor, *, exact_precision: bool = True) -> torch.Tensor:
        """Class scores: logits ("logits", "probe_head"), probabilities ("lightgbm") or
        libsvm's votes plus confidences ("svc"). `exact_precision` False runs in fp32 (the
        attacks do, so bf16 rounding does not blunt their gradients)."""
        x = self._inputs(pixels)
        autocast = (
            autocast_factory(self.config.device, self.config.precision) if exact_precision else None
        )
        if self.scorer == "logits":
            with autocast() if autocast is not None else nullcontext():
                return self.module(x).float()
        if self.scorer == "probe_head":  # the probe trained in fp32 on the frozen features
            return self.module.head(self._features(x, autocast))
        if self.scorer == "lightgbm":
            assert self.probe is not None
            features = self._features(x, autocast).detach().cpu().numpy()
            return torch.from_numpy(self.probe.predict_proba(features)).float()
        return self.module(x)

    @torch.no_grad()
    def predict(self, pixels: torch.Tensor) -> torch.Tensor:
        """Predicted classes, exactly as the run's last labelled stage predicted them."""
        if self.scorer == "svc":
            return self.module.predict(self._inputs(pixels)).cpu()
        if self.scorer == "lightgbm":
            assert self.probe is not None
            features = self._features(self._inputs(pixels), None).cpu().numpy()
            proba = self.probe.predict_proba(features)
            return torch.from_numpy(self.probe.classes_[proba.argmax(axis=1)]).long()
        return self.scores(pixels).argmax(dim=1).cpu()

    @torch.no_grad()
    def probabilities(self, pixels: torch.Tensor) -> torch.Tensor | None:
        """(B, classes) probabilities; None for the SVC (its scores are votes, not
        probabilities: study C fitted it without Platt scaling)."""
        if self.scorer == "svc":
            return None
        scores = self.scores(pixels).cpu()
        return scores if self.scorer == "lightgbm" else scores.softmax(dim=1)

    @property
    def attack_note(self) -> str | None:
        """Why attacks do not apply (None: they do)."""
        if self.scorer == "svc":
            return (
                "not applicable: libsvm's SVC predicts by one-vs-one votes, which have no "
                "input gradient (a gradient-free attack would be another study)"
            )
        if self.scorer == "lightgbm":
            return (
                "not applicable: the LightGBM probe is a forest of trees, piecewise constant "
                "in its input, so it has no input gradient"
            )
        return None


def run_config_of(run: RunRecord) -> RunConfig:
    """The run's RunConfig from its stored JSON (keys this version does not know are dropped:
    a record from a newer mnistbench still loads when it trains the same way)."""
    known = {f.name for f in fields(RunConfig)}
    try:
        return RunConfig.from_dict({k: v for k, v in run.config.items() if k in known})
    except (TypeError, ValueError) as error:
        raise ConfigError(f"The config of run {run.run_id} does not load: {error}.") from error


def scorer_of(config: RunConfig, info: Any) -> str:
    """Which path the run's last labelled stage scored the test set by."""
    labelled = [s for s in stages_of(info.recipe, config) if get_stage_kind(s.kind).labelled]
    kind = labelled[-1].kind
    return {
        "linear_probe": "probe_head",
        "lightgbm_probe": "lightgbm",
        "sklearn_fit": "svc",
    }.get(kind, "logits")


def load_model(
    run_id: int,
    store: Store,
    *,
    model: str | None = None,
    device: str = "cpu",
) -> LoadedModel:
    """Run `run_id`'s trained model from `store`, ready to evaluate, on `device`.

    An outside model is built from `model` (its spec, e.g. path/to/file.py:factory) when its
    file moved; either way the rebuilt architecture's fingerprint (which covers an outside
    model's source file) must equal the run's record. Raises WeightsError (a StoreError: the
    CLI prints it and exits 2) when the run kept no weights or the file fails its hash.
    """
    run = store.get_run(run_id)
    ref = WeightsRef.of_metrics(run.metrics, run_id)
    if ref is None:
        raise WeightsError(
            f"Run {run_id} ({run.model}) kept no weights: it was trained with --no-weights, "
            "before mnistbench kept weights, or did not finish. Train it again (`mnistbench "
            "run ... --force`) to evaluate it."
        )
    config = run_config_of(run)
    spec = model or config.model
    info = resolve_model(spec, config.recipe_of)
    num_classes = get_dataset_spec(config.dataset).num_classes
    torch.manual_seed(config.seed)  # building draws weights that the file then replaces
    module = build_model(info, num_classes, config.options()).to(device)
    _materialise(module, info, config, device)
    fingerprint = architecture_fingerprint(module, info.source.sha256)
    if run.fingerprint is not None and fingerprint != run.fingerprint:
        raise WeightsError(
            f"The model {spec} builds as architecture {fingerprint}, but run {run_id} was "
            f"trained as {run.fingerprint}: its code or source file changed since. Give the "
            "file the run was trained with (--model path/to/file.py:factory for an outside "
            "model), or check out the commit the run names."
        )
    content = read_weights(store.path, ref, run_id)
    probe = restore_model(module, ref.format, content)
    module.eval()
    mean, std = scaling_stats(info.input_scaling, *_dataset_stats(config.dataset))
    config = _on_device(config, device)
    return LoadedModel(run, config, module, scorer_of(config, info), mean, std, probe)


def _dataset_stats(dataset: str) -> tuple[float, float]:
    spec = get_dataset_spec(dataset)
    return spec.mean, spec.std


def _on_device(config: RunConfig, device: str) -> RunConfig:
    from dataclasses import replace

    return replace(config, device=device)


def _materialise(module: nn.Module, info: Any, config: RunConfig, device: str) -> None:
    """Lazy modules take their shapes from a first forward pass (as the run's probe batch
    did); without it their state dict has no shapes to load into."""
    if any(isinstance(p, nn.parameter.UninitializedParameter) for p in module.parameters()):
        shape = (2, info.input_shape[0], config.image_size, config.image_size)
        with torch.no_grad():
            module(torch.zeros(shape, device=device))


# ------------------------------------------------------------------------------ evaluation


def official_test_images(
    config: RunConfig, data_dir: str | Path | None = None, download: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """The run's test images as uint8 (N, 28, 28) and labels: the official test set, or its
    first `subset` images for a run trained on a subset (as the run scored)."""
    raw = load_dataset(config.dataset, data_dir=data_dir, download=download, progress=False)
    images, labels = raw.test_images, raw.test_labels
    if config.subset is not None:
        images, labels = images[: config.subset], labels[: config.subset]
    return images, labels


def as_pixels(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W) -> float (N, 1, H, W) in [0, 1], as the run's data preparation."""
    return images.to(torch.float32).div_(255.0).unsqueeze(1)


def batched_predictions(loaded: LoadedModel, images: torch.Tensor) -> torch.Tensor:
    """Predicted classes of uint8 images, in the run's evaluation batches."""
    return torch.cat(
        [
            loaded.predict(as_pixels(images[start : start + EVAL_BATCH_SIZE]))
            for start in range(0, len(images), EVAL_BATCH_SIZE)
        ]
    )


def clean_accuracy(loaded: LoadedModel, images: torch.Tensor, labels: torch.Tensor) -> float:
    predictions = batched_predictions(loaded, images)
    return int((predictions == labels).sum()) / len(labels)


def evaluate_corruptions(
    loaded: LoadedModel,
    images: torch.Tensor,
    labels: torch.Tensor,
    progress: Progress = _no_progress,
) -> tuple[CorruptedOutcomes, dict[str, Any]]:
    """Accuracy on each of MNIST-C's 15 corruptions of the test set (data/corruptions.py,
    seeded: the same corrupted images for every run), their mean and the worst; with each
    image's outcome per corruption."""
    from mnistbench.data import corruptions
    from mnistbench.data.locate import cache_root

    per_corruption, scored, correct = {}, {}, {}
    total = len(corruptions.CORRUPTION_NAMES)
    for done, name in enumerate(corruptions.CORRUPTION_NAMES, start=1):
        # generated once per test set and seed, then read back verified by its hash
        corrupted = corruptions.corrupted_test_set(
            images, name, CORRUPTION_SEED, cache_root() / "mnist-c"
        )
        correct[name] = (batched_predictions(loaded, corrupted) == labels).cpu().numpy()
        per_corruption[name] = int(correct[name].sum()) / len(labels)
        scored[name] = corruptions.images_sha256(corrupted)  # exactly which images were scored
        progress("corruptions", done, total)
    worst = min(per_corruption, key=per_corruption.__getitem__)
    # each image's right or wrong, for the paired test between models (compare --on corrupted)
    outcomes = CorruptedOutcomes(
        tuple(correct), np.stack(list(correct.values())), labels_sha256(labels.numpy()), scored
    )
    return outcomes, {
        "accuracy": per_corruption,
        "mean_accuracy": float(np.mean(list(per_corruption.values()))),
        "worst": worst,
        "worst_accuracy": per_corruption[worst],
        "images": len(labels),
        "seed": CORRUPTION_SEED,
        "images_sha256": scored,
    }


def evaluate_calibration(
    loaded: LoadedModel, images: torch.Tensor, labels: torch.Tensor
) -> dict[str, Any]:
    """ECE (15 bins), NLL and Brier of the model's probabilities on the clean test set."""
    chunks = []
    for start in range(0, len(images), EVAL_BATCH_SIZE):
        probabilities = loaded.probabilities(as_pixels(images[start : start + EVAL_BATCH_SIZE]))
        if probabilities is None:
            return {
                "applicable": False,
                "reason": "not applicable: the SVC gives votes, not probabilities (no Platt "
                "scaling, as study C fitted it)",
            }
        chunks.append(probabilities)
    return {"applicable": True, **calibration(torch.cat(chunks), labels).to_dict()}


def evaluate_adversarial(
    loaded: LoadedModel, images: torch.Tensor, labels: torch.Tensor, count: int
) -> dict[str, Any]:
    """FGSM and PGD (20 steps, random start) accuracy at each eps on the first `count` test
    images, in fp32 through the model's own gradient (engine/attacks.py)."""
    note = loaded.attack_note
    if note is not None:
        return {"applicable": False, "reason": note}
    x, y = as_pixels(images[:count]).to(loaded.device), labels[:count].to(loaded.device)

    def scores(pixels: torch.Tensor) -> torch.Tensor:
        return loaded.scores(pixels, exact_precision=False)

    result: dict[str, Any] = {
        "applicable": True,
        "images": len(y),
        "epsilons": list(EPSILONS),
        "attacked_clean_accuracy": int((scores(x).argmax(1) == y).sum()) / len(y),
        **attack_accuracies(scores, x, y),
    }
    family = loaded.run.model_card.get("family")
    if family in SURROGATE_GRADIENT_FAMILIES:
        result["note"] = (
            "attacked through the surrogate gradient of its spikes: gradient masking may "
            "flatter it (the true gradient of a spike is zero almost everywhere)"
        )
    return result


def evaluate_run(
    run_id: int,
    store: Store,
    what: Sequence[str] = EVALUATIONS,
    *,
    adversarial_images: int = ADVERSARIAL_IMAGES,
    data_dir: str | Path | None = None,
    download: bool = False,
    model: str | None = None,
    progress: Progress = _no_progress,
) -> dict[str, Any]:
    """Reload run `run_id`, check its clean test accuracy against the record, run each
    evaluation in `what` and store each as artefact "evaluation_<what>" of the run.
    `progress` hears of each corruption scored and each evaluation finished."""
    unknown = [w for w in what if w not in EVALUATIONS]
    if unknown:
        raise ConfigError(
            f"Unknown evaluation {', '.join(unknown)}; choose from {', '.join(EVALUATIONS)} "
            "(comma-separated, e.g. --what calibration,adversarial)."
        )
    if adversarial_images < 1:
        raise ConfigError(f"--adversarial-images {adversarial_images}: give 1 or more images.")
    loaded = load_model(run_id, store, model=model)
    images, labels = official_test_images(loaded.config, data_dir, download)
    clean = clean_accuracy(loaded, images, labels)
    recorded = loaded.run.metrics.get("test_accuracy")
    results: dict[str, Any] = {
        "run_id": run_id,
        "model": loaded.run.model,
        "dataset": loaded.run.dataset,
        "clean_accuracy": clean,
        "recorded_test_accuracy": recorded,
    }
    if isinstance(recorded, (int, float)) and abs(clean - recorded) > 1e-12:
        results["warning"] = (
            f"the reloaded model scores {clean:.4%} on the test set where the run recorded "
            f"{recorded:.4%} (another device or library version computes differently)"
        )
    for name in what:
        if name == "corruptions":
            outcomes, result = evaluate_corruptions(loaded, images, labels, progress)
            blob = corrupted_outcomes_blob(outcomes)
            store.add_artefact(run_id, CORRUPTED_OUTCOMES, PREDICTIONS_KIND, blob)
        elif name == "calibration":
            result = evaluate_calibration(loaded, images, labels)
        else:
            result = evaluate_adversarial(loaded, images, labels, adversarial_images)
        result = {"clean_accuracy": clean, **result}
        results[name] = result
        store.add_artefact(run_id, f"evaluation_{name}", EVALUATION_KIND, json.dumps(result))
        if name != "corruptions":  # one step each; the corruptions told of every one
            progress(name, 1, 1)
    return results
