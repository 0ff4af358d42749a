"""Tables in the shape of the published comparisons, built only from the results store."""

from __future__ import annotations

import json

from mnistbench.config import RunConfig
from mnistbench.errors import ConfigError
from mnistbench.models import ModelInfo, get_model_info
from mnistbench.report import format as fmt
from mnistbench.store import RunRecord, Store

RUNS_TABLE_COLUMNS = (
    "Model",
    "Architecture",
    "Dataset",
    "Settings (vs recipe)",
    "Epochs",
    "Test acc (final)",
    "Test acc @ best val",
    "Best test acc (max over epochs)",
    "Published",
    "Params",
    "FLOPs/sample",
    "Time/epoch (train)",
    "Energy (kWh)",
    "Device",
)


def latest_per_config(runs: list[RunRecord]) -> list[RunRecord]:
    """Keep the newest run of each config hash (a --force rerun replaces the older one)."""
    latest: dict[str, RunRecord] = {}
    for run in runs:
        latest[run.config_hash] = run  # runs come ordered by run_id
    return sorted(latest.values(), key=lambda r: (r.dataset, r.model, r.run_id))


def _info(model: str) -> ModelInfo | None:
    try:
        return get_model_info(model)
    except ConfigError:  # a model no longer registered still has its stored rows shown
        return None


def _published(model: str, dataset: str) -> str:
    info = _info(model)
    if info is None or info.published is None or dataset != "mnist":
        return "—"
    published = info.published
    text = f"{fmt.percent(published.test_accuracy)} (study {published.study}"
    if published.time_per_epoch_s is not None:
        text += f", {published.time_per_epoch_s:g} s/epoch {published.device or ''}".rstrip()
    return text + ")"


def settings_vs_recipe(run: RunRecord) -> str:
    """The run's settings that differ from its model's registered recipe (seed excluded)."""
    info = _info(run.model)
    if info is None:
        return "—"
    # through JSON, as the store keeps configs, so tuples compare equal to the stored lists
    defaults = json.loads(
        json.dumps({**RunConfig(model=run.model).to_dict(), **info.recipe.defaults})
    )
    ignored = {"model", "dataset", "device", "seed", "epochs"}  # shown in their own columns
    changed = [
        fmt.setting(key, value)
        for key, value in run.config.items()
        if key not in ignored and key in defaults and defaults[key] != value
    ]
    return ", ".join(changed) or "recipe"


def _device(run: RunRecord) -> str:
    env = run.environment
    return f"{env.get('device', '?')}: {env.get('device_name', '?')}"


def runs_table_row(run: RunRecord) -> list[str]:
    m = run.metrics
    return [
        run.model,
        info.architecture if (info := _info(run.model)) else "—",
        run.dataset,
        settings_vs_recipe(run),
        str(m.get("epochs_completed", run.config.get("epochs", "—"))),
        fmt.percent(m.get("test_accuracy")),
        fmt.percent(m.get("test_accuracy_at_best_val")),
        fmt.percent(m.get("best_test_accuracy")),
        _published(run.model, run.dataset),
        fmt.count(m.get("params")),
        fmt.si(m.get("flops_per_sample")),
        fmt.seconds(m.get("time_per_epoch_s")),
        fmt.number(m.get("energy_kwh")),
        _device(run),
    ]


def markdown_table(header: tuple[str, ...] | list[str], rows: list[list[str]]) -> str:
    def line(cells: list[str] | tuple[str, ...]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(header), line(["---"] * len(header)), *(line(r) for r in rows)])


def runs_markdown(store: Store) -> str:
    """Markdown: finished runs in the published tables' shape, then the runs that did not finish."""
    runs = latest_per_config(store.list_runs(status="finished"))
    parts = [
        "# mnistbench results",
        "",
        f"Store: `{store.path}`. Accuracies are top-1 on the official 10,000-image test set. "
        "'Test acc @ best val' takes the epoch chosen on the held-out validation split (the "
        "honest figure); 'Best test acc' is the maximum over epochs, the protocol some "
        "published studies used. Time/epoch is training only, median over epochs.",
        "",
    ]
    if runs:
        parts.append(markdown_table(RUNS_TABLE_COLUMNS, [runs_table_row(r) for r in runs]))
    else:
        parts.append("No finished runs yet. Start one with `mnistbench run mlp`.")
    others = [r for r in store.list_runs() if r.status != "finished"]
    if others:
        parts += [
            "",
            "## Runs not finished (running, failed, interrupted, diverged)",
            "",
            markdown_table(
                ("Run", "Model", "Dataset", "Status", "Error"),
                [[str(r.run_id), r.model, r.dataset, r.status, r.error or ""] for r in others],
            ),
        ]
    return "\n".join(parts) + "\n"
