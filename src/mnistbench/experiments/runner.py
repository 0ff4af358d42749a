"""Run one configuration end to end: data, model, training, measurements, and its record.

The store row is created only once the data and model are ready; once it exists, the run always
ends in a recorded status. Training reports its rows to a `RunListener`: a `StoreListener`
writes them to the store as they happen (in-process trials of experiments/batch.py), while
`train_config` collects them into a `TrainedRun` (for worker processes and Ray tasks, which
never touch the store) that the driver writes with `record`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import suppress
from datetime import datetime, timezone
from pathlib import Path

import torch

from mnistbench.cards import build_model_card
from mnistbench.config import RunConfig
from mnistbench.data import (
    RawDataset,
    get_dataset_spec,
    load_dataset,
    prepare_device_data,
    resize_data,
    seal_test,
)
from mnistbench.engine import FitResult, summarize_epochs
from mnistbench.engine.device import place_model
from mnistbench.engine.measure import RunMeter, collect_environment, measure_after_training
from mnistbench.engine.memory import out_of_memory_error
from mnistbench.engine.size import static_measurements
from mnistbench.errors import StoreError
from mnistbench.experiments.configure import validate_config
from mnistbench.experiments.trained import TrainedRun
from mnistbench.experiments.unrecorded import report_unrecorded
from mnistbench.models import ModelInfo, build_model, check_model_output, resolve_model
from mnistbench.recipes import (
    RecipeContext,
    check_model_for_recipe,
    check_recipe_config,
    get_stage_kind,
    run_recipe,
    stages_of,
)
from mnistbench.store import RunRecord, Store


class RunListener:
    """Where a run's rows go as they happen: the store (`run_config`) or a `TrainedRun`."""

    def started(
        self, config: RunConfig, environment: dict[str, object], model_card: dict[str, object]
    ) -> None:
        """Data and model are ready; training starts now. `model_card`: cards.build_model_card."""

    def epoch(self, epoch: int, metrics: dict[str, object]) -> None:
        """One epoch's metrics (1-based)."""

    def artefact(self, name: str, kind: str, content: bytes | str) -> None:
        """A named artefact of the run."""

    def ended(self, status: str, metrics: dict[str, object], error: str | None) -> None:
        """The final status; called exactly once after `started`, on every way out."""


def epoch_line(epoch: int, metrics: dict[str, object], epochs: int | None = None) -> str:
    """One epoch in one line: `epoch 2/5  loss 0.1234  val 97.81%  test 97.60%  3.2 s train
    + 0.4 s eval` (a stage's epochs say which stage; a missing figure is a dash)."""

    def percent(key: str) -> str:
        value = metrics.get(key)
        return "—" if value is None else f"{100 * float(value):.2f}%"  # type: ignore[arg-type]

    stage = metrics.get("stage")
    where = f"epoch {epoch} [{stage} {metrics.get('stage_epoch')}]" if stage else f"epoch {epoch}"
    if epochs and not stage:
        where += f"/{epochs}"
    loss = metrics.get("train_loss")
    seconds = [metrics.get(key) or 0.0 for key in ("train_time_s", "eval_time_s")]
    return (
        f"{where}  loss {'—' if loss is None else f'{loss:.4f}'}  val {percent('val_accuracy')}"
        f"  test {percent('test_accuracy')}  {seconds[0]:.1f} s train + {seconds[1]:.1f} s eval"
    )


class StoreListener(RunListener):
    """Writes each row to the store when it happens (the in-process path), and tells `log` one
    line at the start and one per epoch, so a long run shows progress after each bar closes."""

    def __init__(self, store: Store, log: Callable[[str], None] = lambda message: None):
        self.store = store
        self.log = log
        self.run_id: int | None = None
        self._epochs: int | None = None
        self._last_epoch = 0

    def started(
        self, config: RunConfig, environment: dict[str, object], model_card: dict[str, object]
    ) -> None:
        config_hash = config.config_hash()
        self.run_id = self.store.start_run(
            config.to_dict(),
            config_hash,
            environment,
            model_card=model_card,
            fingerprint=str(model_card["fingerprint"]),
        )
        self._epochs = config.epochs
        self.log(
            f"run {self.run_id}: {config.model} on {config.dataset} ({config_hash}), "
            f"{config.device}"
        )

    def epoch(self, epoch: int, metrics: dict[str, object]) -> None:
        assert self.run_id is not None
        self.store.log_epoch(self.run_id, epoch, metrics)
        if epoch == self._last_epoch:  # the same epoch again: its final test score was added
            test = metrics.get("test_accuracy")
            if test is not None:
                self.log(f"epoch {epoch}  final test {100 * float(test):.2f}%")  # type: ignore[arg-type]
            return
        self._last_epoch = epoch
        self.log(epoch_line(epoch, metrics, self._epochs))

    def artefact(self, name: str, kind: str, content: bytes | str) -> None:
        assert self.run_id is not None
        self.store.add_artefact(self.run_id, name, kind, content)

    def ended(self, status: str, metrics: dict[str, object], error: str | None) -> None:
        assert self.run_id is not None
        self.store.finish_run(self.run_id, status, metrics, error=error)


def utc_now() -> str:
    """Now as the store writes times: ISO 8601, UTC, milliseconds."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class _Collector(RunListener):
    """Collects a run's rows into a TrainedRun (in the process that trains it)."""

    def __init__(self, config: RunConfig):
        self.run = TrainedRun(config)

    def started(
        self, config: RunConfig, environment: dict[str, object], model_card: dict[str, object]
    ) -> None:
        self.run.environment = dict(environment)
        self.run.model_card = dict(model_card)
        self.run.started = True
        self.run.started_at = utc_now()

    def epoch(self, epoch: int, metrics: dict[str, object]) -> None:
        self.run.epochs.append((epoch, dict(metrics)))

    def artefact(self, name: str, kind: str, content: bytes | str) -> None:
        self.run.artefacts.append((name, kind, content))

    def ended(self, status: str, metrics: dict[str, object], error: str | None) -> None:
        self.run.status, self.run.metrics, self.run.error = status, dict(metrics), error


def checked_model(config: RunConfig, info: ModelInfo) -> torch.nn.Module:
    """`config`'s model, built, placed and checked: its recipe can honour the settings, it has
    what the recipe's stages need, and it maps a probe batch to one score per class. Every
    bad-input ConfigError a run can meet before its row exists comes from here (the batch
    driver calls it while planning, so a sweep stops before it trains anything)."""
    recipe = info.recipe
    check_recipe_config(recipe, config)  # settings first: no model is built for bad ones
    input_shape = (info.input_shape[0], config.image_size, config.image_size)
    num_classes = get_dataset_spec(config.dataset).num_classes
    model = place_model(build_model(info, num_classes, config.options()), config.device)
    stages = stages_of(recipe, config)
    fits_first = any(get_stage_kind(stage.kind).fits_before_forward for stage in stages)
    check_model_for_recipe(recipe, config, model)
    check_model_output(
        model, config.model, num_classes, input_shape, config.device, fits_before_forward=fits_first
    )
    return model


def execute(
    config: RunConfig,
    listener: RunListener,
    *,
    raw: RawDataset | None = None,
    data_dir: str | Path | None = None,
    progress: bool = True,
    download: bool = True,
    measure_energy: bool = True,
    final_test_only: bool = False,
    info: ModelInfo | None = None,
) -> None:
    """Train and evaluate `config`, reporting every row to `listener`.

    `final_test_only` (records: `mnistbench speedrun`) seals the test split, so the recipe's
    last labelled stage scores the finished model on it once and any earlier read raises
    SealedTestSetError. `info` is the model as the caller already resolved it (else resolved
    here, once). `raw` skips loading the data set (a sweep's driver loads it once for all its
    trials).

    Everything about the input is checked before `listener.started`: the model builds with its
    options, maps a probe batch to one score per class, and its recipe can honour the settings;
    failures raise (ConfigError) with nothing reported. After it, Ctrl-C ends as "interrupted"
    and any other exception as "failed" (with what was measured so far), and both are
    re-raised.
    """
    wall_started = time.perf_counter()
    final_test_only = final_test_only or config.test_policy == "final_only"
    info = info or resolve_model(config.model, config.recipe_of)
    input_shape = (info.input_shape[0], config.image_size, config.image_size)
    torch.manual_seed(config.seed)
    model = checked_model(config, info)
    # peak memory and energy of the whole run, from data preparation to the latency pass
    with RunMeter(config.device, measure_energy=measure_energy) as meter:
        data_started = time.perf_counter()
        if raw is None:
            raw = load_dataset(
                config.dataset, data_dir=data_dir, download=download, progress=progress
            )
        data = prepare_device_data(
            raw,
            config.device,
            val_size=config.val_size,
            seed=config.seed,
            scaling=info.input_scaling,
            subset=config.subset,
        )
        data = resize_data(data, config.image_size)
        if final_test_only:
            data = seal_test(data, f"this {config.model} run")
        # all None for a scikit-learn model until it is fitted: measure_after_training takes them
        metrics: dict[str, object] = static_measurements(model, input_shape, config.device)
        metrics["data_load_s"] = time.perf_counter() - data_started
        metrics["test_protocol"] = "final_only" if final_test_only else "every_epoch"
        model_card = build_model_card(info, config, model)

        listener.started(config, collect_environment(config.device), model_card)
        try:
            context = RecipeContext(
                model=model,
                data=data,
                config=config,
                on_epoch=lambda record: listener.epoch(record.epoch, record.to_dict()),
                add_artefact=listener.artefact,
                progress=progress,
                test_policy="final_only" if final_test_only else "every_epoch",
                options=config.options(),
            )
            result = run_recipe(context, info.recipe)
            metrics.update(_training_metrics(result, len(data.train), config))
            # the recipe's per-stage figures and, for a recipe of several stages, the headline
            # stage's time per epoch, epochs and throughput (the summary above mixes stages)
            metrics.update(context.metrics)
            after, errors = measure_after_training(
                model, config, input_shape, result, data, metrics, listener.artefact
            )
            metrics.update({**after, **errors, **meter.stop()})
            metrics["wall_time_s"] = time.perf_counter() - wall_started
            if result.status == "finished":
                metrics.update(_send_weights(model, context, listener))
            listener.ended(result.status, metrics, result.message)
        except KeyboardInterrupt:
            listener.ended("interrupted", metrics, "interrupted (Ctrl-C or SIGTERM)")
            raise
        except BaseException as error:
            doing = (
                f"running {config.model} (batch size {config.batch_size}, "
                f"{config.image_size} px, {config.precision})"
            )
            oom = out_of_memory_error(error, device=config.device, doing=doing)
            listener.ended(
                "failed", metrics, str(oom) if oom else f"{type(error).__name__}: {error}"
            )
            if oom is not None:
                raise oom from error
            raise


def _send_weights(
    model: torch.nn.Module, context: RecipeContext, listener: RunListener
) -> dict[str, object]:
    """The trained model's weights to the listener, as an artefact of kind "weights" that the
    store keeps as a content-addressed file (store/runs.py). A model that will not serialise
    costs the run nothing but its kept weights: the reason is recorded as `weights_error`."""
    from mnistbench.models.weights import serialize_model
    from mnistbench.recipes.probe_stages import LIGHTGBM_PROBE_KEY
    from mnistbench.store.runs import WEIGHTS_KIND

    try:
        weights = serialize_model(model, context.shared.get(LIGHTGBM_PROBE_KEY))
    except Exception as error:  # e.g. an outside model with non-tensor state
        return {"weights_error": f"{type(error).__name__}: {error}"}
    listener.artefact(weights.format, WEIGHTS_KIND, weights.content)
    return {}


def train_config(
    config: RunConfig,
    *,
    raw: RawDataset | None = None,
    data_dir: str | Path | None = None,
    progress: bool = False,
    download: bool = False,
    measure_energy: bool = True,
) -> TrainedRun:
    """Train and evaluate `config` without a store and return what it produced.

    For worker processes: any failure comes back as a TrainedRun with status "failed" (and
    `started` False when it failed before training), never as an exception. Ctrl-C (a Ray
    task's cancel) after training started comes back as "interrupted" with the epochs it
    finished; before that it is re-raised (nothing to record).
    """
    validate_config(config)
    collector = _Collector(config)
    try:
        execute(
            config,
            collector,
            raw=raw,
            data_dir=data_dir,
            progress=progress,
            download=download,
            measure_energy=measure_energy,
        )
    except KeyboardInterrupt:
        if not collector.run.started:
            raise
    except Exception as error:
        if not collector.run.started:
            collector.run.environment = collect_environment(config.device)
            collector.run.status = "failed"
            collector.run.error = f"{type(error).__name__}: {error}"
    return collector.run


def record(store: Store, run: TrainedRun) -> RunRecord:
    """Write a TrainedRun (from a worker) to the store as one run; returns the stored record.

    When the store refuses a write (disk full, read-only), the run's figures are printed to
    stderr as JSON (`report_unrecorded`), a row already begun is marked failed if the store
    still allows it, and the StoreError is re-raised: nothing computed is lost silently.
    """
    run_id = None
    try:
        run_id = store.start_run(
            run.config.to_dict(),
            run.config.config_hash(),
            run.environment,
            model_card=run.model_card or None,
            fingerprint=run.model_card.get("fingerprint") if run.model_card else None,
            started_at=run.started_at,
            hostname=run.hostname,
            pid=run.pid,
        )
        for epoch, metrics in run.epochs:
            store.log_epoch(run_id, epoch, metrics)
        for name, kind, content in run.artefacts:
            store.add_artefact(run_id, name, kind, content)
        store.finish_run(run_id, run.status, run.metrics, error=run.error)
    except StoreError as error:
        if run_id is not None:  # a half-written row must not look finished or stay 'running'
            with suppress(StoreError):
                store.finish_run(run_id, "failed", error=f"not fully recorded: {error}")
        report_unrecorded(run, error)
        raise
    return store.get_run(run_id)


def _training_metrics(result: FitResult, train_size: int, config: RunConfig) -> dict[str, object]:
    """Summary figures of a finished fit: accuracies, times, throughput."""
    summary = summarize_epochs(result.epochs, config.target_accuracy)
    total_train_time_s = summary.get("total_train_time_s")
    # the images the optimizer steps saw: fewer than train_size x epochs with train_images
    trained = result.train_images_seen if config.train_images else train_size * len(result.epochs)
    return {
        **summary,
        "stopped_early": result.stopped_early,
        "train_images_per_s": (trained / total_train_time_s if total_train_time_s else None),
        "train_images_seen": trained,
        "train_steps": result.train_steps or None,  # None: fitted by a solver, no steps
        "train_cpu_share": cpu_share(result.train_cpu_s, total_train_time_s, config.device),
    }


def cpu_share(cpu_s: float, wall_s: object, device: str) -> float | None:
    """The share of its torch threads' time the training loop had the CPU: near 1 on cores of
    its own, well under 1 when other processes shared them (its times are then slower than the
    machine). Only CPU runs: a GPU run's host threads mostly wait, by design."""
    if device != "cpu" or not isinstance(wall_s, (int, float)) or wall_s <= 0:
        return None
    return cpu_s / (wall_s * torch.get_num_threads())
