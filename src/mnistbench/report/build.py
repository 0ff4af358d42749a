"""The full report: published tables rebuilt beside measured ones, figures, and the HTML page.

`report_markdown(store)` gives the tables alone (what `mnistbench report` prints);
`write_report(store, out_dir)` writes report.md, index.html, figures/ and artefacts/.
Everything comes from the store, so a report can be rebuilt at any time without training.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from mnistbench.models import list_models
from mnistbench.report import figures as figs
from mnistbench.report import format as fmt
from mnistbench.report.collect import (
    FINAL_PROTOCOL,
    HONEST_PROTOCOL,
    PUBLISHED_PROTOCOL,
    ReportData,
    RunGroup,
    Stat,
    group_labels,
    load,
    model_info,
    pareto_front,
    varying_families,
)
from mnistbench.report.document import (
    Document,
    Figure,
    Paragraph,
    Section,
    Table,
    to_html,
    to_markdown,
)
from mnistbench.report.tables import RUNS_TABLE_COLUMNS, runs_table_row, settings_vs_recipe
from mnistbench.store import Store

STUDY_TITLES = {
    "A": "Study A — ten-architecture comparison",
    "B": "Study B — MLP / CNN / RNN / SNN accuracy vs training time",
    "C": "Study C — ResNet-18/50 and SVM, MNIST and Fashion-MNIST",
    "D": "Study D — sub-20k-parameter CNN ablation",
    "E": "Study E — four-iteration parameter diet",
}
# Settings that scale a run down or move it without changing the recipe: a run that differs from
# its recipe only in these still fills its study's row.
SCALE_KNOBS = ("epochs", "subset", "val_size", "device", "precision", "compile")
MAX_IMAGES = 40
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
STUDY_COLUMNS = [
    "Model",
    "Architecture",
    "Dataset",
    "Settings (vs recipe)",
    "Device",
    "Epochs (published)",
    "Seeds",
    "Published acc",
    "Best test acc (published protocol)",
    "Test acc @ best val (honest)",
    "Final test acc",
    "Honest − published",
    "Params (published)",
    "Params",
    "Time/epoch published",
    "Time/epoch (train)",
    "Energy (Wh)",
]


@dataclass
class ReportFiles:
    """What write_report produced."""

    markdown: Path
    html: Path
    figures: list[Path] = field(default_factory=list)
    images: list[Path] = field(default_factory=list)


def report_markdown(store: Store) -> str:
    """The report's tables as Markdown, without figures (nothing is written)."""
    return to_markdown(build_document(load(store), None), figures=False)


def write_report(store: Store, out_dir: str | Path) -> ReportFiles:
    """Write report.md, index.html, figures/*.png|svg and artefacts/ into `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = load(store)
    document = build_document(data, out)
    markdown = out / "report.md"
    page = out / "index.html"
    markdown.write_text(to_markdown(document), encoding="utf-8")
    page.write_text(to_html(document, subtitle=_subtitle(data)), encoding="utf-8")
    shown = [b for s in document.sections for b in s.blocks if isinstance(b, Figure)]
    return ReportFiles(
        markdown=markdown,
        html=page,
        figures=[out / b.png for b in shown if b.png.startswith("figures/")],
        images=[out / b.png for b in shown if b.png.startswith("artefacts/")],
    )


def _subtitle(data: ReportData) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"Built from `{data.store_path}` on {stamp}: {len(data.runs)} runs."


# ------------------------------------------------------------------------------ document


def build_document(data: ReportData, out: Path | None) -> Document:
    """The whole report; figures are drawn into `out` (left out when `out` is None)."""
    tradeoffs, curves, matrices = _figure_sections(data, out) if out is not None else ([], [], [])
    # the trade-off figures lead: they are the one-look summary; the tables follow
    sections = [
        *tradeoffs,
        *_published_sections(data, out),
        *curves,
        *matrices,
        _sensitivity_section(data, out),
        _speedup_section(data, out),
        _speedrun_section(data),
        _energy_section(data, out),
    ]
    if out is not None:
        sections.append(_images_section(data, out))
    sections += [_unfinished_section(data), _all_runs_section(data)]
    return Document("mnistbench results", _intro(data), [s for s in sections if s.blocks])


def _intro(data: ReportData) -> list[Paragraph | Table | Figure]:
    blocks: list[Paragraph | Table | Figure] = [
        Paragraph(
            f"Store: `{data.store_path}`. Accuracies are top-1 on the official 10,000-image test "
            "set. Three protocols are shown side by side: 'Best test acc' is the maximum of the "
            "test accuracy over epochs, the (optimistic) protocol of the published studies A "
            "and D; 'Test acc @ best val' is the test accuracy of the epoch chosen on a held-out "
            "validation split, the honest figure used in every plot; 'Final' is the model after "
            "its last epoch. Time/epoch is training only (no evaluation), the median over "
            "epochs. Rows with several seeds show mean ± standard deviation over the seeds of "
            "one configuration."
        )
    ]
    if not data.runs:
        blocks.append(Paragraph("No finished runs yet. Start one with `mnistbench run mlp`."))
        return blocks
    statuses = Counter(r.status for r in data.runs)
    envs = [r.environment for r in data.runs]
    summary = [
        ["Runs (latest per config)", ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))],
        ["Configurations (seeds merged)", str(len(data.groups))],
        ["Models", ", ".join(sorted({r.model for r in data.runs}))],
        ["Datasets", ", ".join(sorted({r.dataset for r in data.runs}))],
        [
            "Devices",
            _distinct(f"{e.get('device', '?')}: {e.get('device_name', '?')}" for e in envs),
        ],
        ["torch", _distinct(str(e.get("torch_version", "?")) for e in envs)],
        [
            "mnistbench (git)",
            _distinct(
                f"{e.get('mnistbench_version', '?')} ({e.get('git_sha', '?')})" for e in envs
            ),
        ],
    ]
    if not data.finished:
        blocks.append(Paragraph("No finished runs yet. Start one with `mnistbench run mlp`."))
    blocks.append(Table(["Store", ""], summary))
    return blocks


def _distinct(values) -> str:
    counts = Counter(values)
    return "; ".join(f"{v} ×{n}" if n > 1 else v for v, n in sorted(counts.items()))


# ------------------------------------------------------------------ published tables


def _recipe_like(group: RunGroup) -> bool:
    info = model_info(group.model)
    if info is None:
        return False
    changed = settings_vs_recipe(group.first)
    if changed == "recipe":
        return True
    keys = {part.split("=", 1)[0] for part in changed.split(", ")}
    return keys <= set(SCALE_KNOBS)


def _published_acc(group: RunGroup | None, model: str) -> float | None:
    info = model_info(model)
    if info is None or info.published is None:
        return None
    if group is not None and group.dataset != "mnist":
        return None  # registrations carry the MNIST figure
    return info.published.test_accuracy


def _study_row(model: str, group: RunGroup | None) -> list[str]:
    info = model_info(model)
    published = info.published if info else None
    pub_acc = _published_acc(group, model)
    pub_epochs = f" ({published.epochs})" if published and published.epochs else ""
    pub_time = "—"
    if published and published.time_per_epoch_s is not None:
        pub_time = f"{published.time_per_epoch_s:g} s {published.device or ''}".rstrip()
    fixed = [
        model,
        info.architecture if info else "— (no longer registered)",
    ]
    if group is None:
        return [
            *fixed,
            "mnist",
            "not run yet",
            "—",
            f"—{pub_epochs}",
            "0",
            fmt.percent(pub_acc),
            "—",
            "—",
            "—",
            "—",
            fmt.count(published.params if published else None),
            "—",
            pub_time,
            "—",
            "—",
        ]
    honest = group.stat(HONEST_PROTOCOL)
    delta = "—"
    if honest is not None and pub_acc is not None:
        delta = f"{100 * (honest.mean - pub_acc):+.2f} pt"
    epochs = Stat.of(r.metrics.get("epochs_completed", r.config.get("epochs")) for r in group.runs)
    epochs_text = "—" if epochs is None else f"{epochs.mean:g}"
    return [
        *fixed,
        group.dataset,
        settings_vs_recipe(group.first),
        group.device,
        f"{epochs_text}{pub_epochs}",
        str(len(group.runs)),
        fmt.percent(pub_acc),
        _max_over_epochs(group),
        fmt.percent_stat(honest),
        fmt.percent_stat(group.stat(FINAL_PROTOCOL)),
        delta,
        fmt.count(published.params if published else None),
        fmt.count(_int(group.stat("params"))),
        pub_time,
        fmt.seconds_stat(group.stat("time_per_epoch_s")),
        fmt.number_stat(group.stat("energy_kwh"), scale=1000.0),
    ]


def _max_over_epochs(group: RunGroup) -> str:
    """The published protocol's figure; runs that saw the test set only once have none."""
    if all(r.metrics.get("test_protocol") == "final_only" for r in group.runs):
        return "n/a (test set used once)"
    return fmt.percent_stat(group.stat(PUBLISHED_PROTOCOL))


def _int(stat: Stat | None) -> int | None:
    return None if stat is None else round(stat.mean)


def _published_sections(data: ReportData, out: Path | None) -> list[Section]:
    studies: dict[str, list[str]] = {}
    for info in list_models():
        if info.published is not None:
            studies.setdefault(info.published.study, []).append(info.name)
    top = Section(
        "published",
        "Published tables rebuilt",
        [
            Paragraph(
                "One table per published study (see SPECS.md), every registered model of the "
                "study listed whether or not it has been run. 'Published' figures come from each "
                "model's registration; the published accuracies are MNIST figures, so they are "
                "compared on MNIST rows only. Rows show runs with the model's recipe, or runs "
                "that only scale it (fewer epochs, a subset, another device); other settings are "
                "in the sensitivity and all-runs tables. Published times were taken on other "
                "hardware (and in study A include evaluation), so compare them with care."
            )
        ],
    )
    sections = [top]
    listed: set[str] = set()
    labels = group_labels(data.groups)
    bars: list[figs.AccuracyBars] = []
    for study in sorted(studies):
        models = sorted(
            studies[study],
            key=lambda m: (-(_published_acc(None, m) or 0.0), m),
        )
        rows = []
        for model in models:
            groups = data.groups_of(model)
            chosen = [g for g in groups if _recipe_like(g)] or groups
            rows += [_study_row(model, g) for g in chosen] or [_study_row(model, None)]
            listed.add(model)
            bars += [
                figs.AccuracyBars(
                    f"{labels[g.key]} ({study})",
                    published,
                    g.stat(PUBLISHED_PROTOCOL),
                    g.stat(HONEST_PROTOCOL),
                    g.stat(FINAL_PROTOCOL),
                )
                for g in chosen
                if g.dataset == "mnist" and (published := _published_acc(g, model)) is not None
            ]
        sections.append(
            Section(
                f"study-{study.lower()}",
                STUDY_TITLES.get(study, f"Study {study}"),
                [Table(STUDY_COLUMNS, rows)],
                level=3,
            )
        )
    if out is not None and (figure := figs.published_vs_measured(bars, out)) is not None:
        top.blocks.append(figure)
    others = [g for g in data.groups if g.model not in listed]
    if others:
        sections.append(
            Section(
                "other-models",
                "Models without a published figure",
                [Table(STUDY_COLUMNS, [_study_row(g.model, g) for g in others])],
                level=3,
            )
        )
    return sections


# -------------------------------------------------------------------------- figures


def _params_published(model: str) -> tuple[float, float] | None:
    info = model_info(model)
    p = info.published if info else None
    if p is None or p.params is None or p.test_accuracy is None:
        return None
    return float(p.params), p.test_accuracy


def _figure_sections(
    data: ReportData, out: Path
) -> tuple[list[Section], list[Section], list[Section]]:
    """(accuracy-vs-cost, learning-curve, confusion-matrix) sections."""
    cost = Section("tradeoffs", "Accuracy vs cost (Pareto fronts)")
    for figure in (
        figs.accuracy_vs_cost(
            data,
            out,
            name="accuracy_vs_params",
            title="Accuracy vs parameters",
            cost=lambda g: g.stat("params"),
            xlabel="trainable parameters (log)",
            caption="Each point is one configuration on the whole data set (runs on a --subset "
            "are left out; mean over seeds, bars = std); the dashed "
            "line is the Pareto front (no other configuration has fewer parameters and higher "
            "accuracy); grey diamonds are the published MNIST figures.",
            published=_params_published,
        ),
        figs.accuracy_vs_cost(
            data,
            out,
            name="accuracy_vs_time",
            title="Accuracy vs time per epoch",
            cost=lambda g: g.stat("time_per_epoch_s"),
            xlabel="training time per epoch, s (log; median over epochs)",
            caption="Time per epoch is training only, on the device each run used (see the "
            "Device column); the Pareto front is over all runs of the dataset.",
        ),
    ):
        if figure is not None:
            cost.blocks.append(figure)
    if data.finished and not cost.blocks:
        cost.blocks.append(Paragraph("No finished run has both an accuracy and a cost to plot."))
    curves = Section("curves", "Learning curves", list(figs.learning_curves(data, out)))
    matrices = Section("confusion", "Confusion matrices", list(figs.confusion_matrices(data, out)))
    return [cost], [curves], [matrices]


# -------------------------------------------------------------------- sensitivity


def _sensitivity_section(data: ReportData, out: Path | None) -> Section:
    families = varying_families(
        data.groups,
        ("optimizer", "lr"),
        label=lambda g: (g.config.get("optimizer"), g.config.get("lr")),
    )
    section = Section("sensitivity", "Optimizer and learning-rate sensitivity")
    if not data.finished:
        return section
    if not families:
        section.blocks.append(
            Paragraph(
                "No set of runs in the store differs only in optimizer or learning rate. Run one "
                "model with several `--optimizer` / `--lr` values (e.g. the efficiency-showdown "
                "suite) to fill this section."
            )
        )
        return section
    if out is not None and (figure := figs.sensitivity(families, out)) is not None:
        section.blocks.append(figure)
    rows = []
    for family in families:
        for group in sorted(
            family, key=lambda g: (str(g.config.get("optimizer")), g.config.get("lr") or 0)
        ):
            rows.append(
                [
                    group.model,
                    group.dataset,
                    str(group.config.get("optimizer", "—")),
                    f"{group.config.get('lr', '—'):g}"
                    if isinstance(group.config.get("lr"), (int, float))
                    else "—",
                    str(group.config.get("epochs", "—")),
                    str(len(group.runs)),
                    fmt.percent_stat(group.stat(HONEST_PROTOCOL)),
                    _max_over_epochs(group),
                    fmt.percent_stat(group.stat(FINAL_PROTOCOL)),
                    fmt.seconds_stat(group.stat("time_per_epoch_s")),
                ]
            )
    section.blocks.append(
        Table(
            ["Model", "Dataset", "Optimizer", "LR", "Epochs", "Seeds", "Test acc @ best val",
             "Best test acc", "Final test acc", "Time/epoch"],
            rows,
        )
    )  # fmt: skip
    return section


# ---------------------------------------------------------------------- CPU vs GPU


def _speedup_section(data: ReportData, out: Path | None) -> Section:
    section = Section("speedup", "CPU vs GPU speed-up")
    if not data.finished:
        return section
    families = varying_families(data.groups, ("device", "precision"), label=lambda g: g.device)
    labels = group_labels(data.groups)
    rows, bars = [], []
    for family in families:
        cpu = [g for g in family if g.device == "cpu"]
        others = [g for g in family if g.device != "cpu"]
        if not cpu or not others:
            continue
        cpu_time = cpu[0].stat("time_per_epoch_s")
        times = {"cpu": cpu_time} if cpu_time else {}
        for gpu in others:
            gpu_time = gpu.stat("time_per_epoch_s")
            if gpu_time:
                times[gpu.device] = gpu_time
            ratio = (
                cpu_time.mean / gpu_time.mean
                if cpu_time and gpu_time and gpu_time.mean > 0
                else None
            )
            cpu_name = cpu[0].first.environment.get("device_name", "?")
            gpu_name = gpu.first.environment.get("device_name", "?")
            rows.append(
                [
                    labels[cpu[0].key],
                    cpu[0].dataset,
                    f"{fmt.seconds_stat(cpu_time)} ({cpu_name})",
                    f"{fmt.seconds_stat(gpu_time)} ({gpu_name})",
                    "—" if ratio is None else f"{ratio:.1f}×",
                    f"{cpu[0].config.get('precision', '?')} / {gpu.config.get('precision', '?')}",
                    fmt.percent_stat(cpu[0].accuracy()),
                    fmt.percent_stat(gpu.accuracy()),
                ]
            )
        if len(times) > 1:
            bars.append((labels[cpu[0].key], times))
    devices = sorted({g.device for g in data.groups})
    if not rows:
        gpu_runs = [d for d in devices if d != "cpu"]
        text = (
            "No GPU runs in the store: every finished run used "
            f"{', '.join(devices) or 'no device'}. Run the same configuration with "
            "`--device cuda` (e.g. the cpu-vs-gpu suite) on a machine with a GPU to fill this "
            "section."
            if not gpu_runs
            else f"The store has {', '.join(gpu_runs)} runs, but none has a CPU run of the same "
            "configuration to compare with."
        )
        section.blocks.append(Paragraph(text))
        return section
    if out is not None and (figure := figs.speedup(bars, out)) is not None:
        section.blocks.append(figure)
    section.blocks.append(
        Table(
            ["Configuration", "Dataset", "CPU time/epoch", "GPU time/epoch", "Speed-up",
             "Precision (CPU / GPU)", "CPU acc @ best val", "GPU acc @ best val"],
            rows,
        )
    )  # fmt: skip
    return section


# ------------------------------------------------------------------------- speedruns


def _speedrun_section(data: ReportData) -> Section:
    """Runs whose test set stayed sealed until one final score (`mnistbench speedrun`)."""
    section = Section("speedruns", "Speedruns (test set sealed until the final score)")
    sealed = {r.run_id for r in data.finished if r.metrics.get("test_protocol") == "final_only"}
    groups = [g for g in data.groups if any(r.run_id in sealed for r in g.runs)]
    if not groups:
        return section
    section.blocks.append(
        Paragraph(
            "Each seed is scored once on the test set, after its last epoch; nothing was chosen "
            "on test (docs/speedrun.md). 'Seeds ≥ target' counts seeds whose final test "
            "accuracy reached the run's target; training time is the sum of the epochs' "
            "training time, without data loading, evaluation or compile warm-up."
        )
    )
    rows = []
    for group in groups:
        target = group.first.config.get("target_accuracy")
        finals = [r.metrics.get(FINAL_PROTOCOL) for r in group.runs]
        reached = sum(isinstance(a, (int, float)) and a >= (target or 1.0) for a in finals)
        rows.append(
            [
                group.model,
                group.dataset,
                str(group.first.environment.get("device_name", group.device)),
                fmt.count(_int(group.stat("params"))),
                str(len(group.runs)),
                fmt.percent_stat(group.stat(FINAL_PROTOCOL)),
                f"≥ {fmt.percent(target)}" if isinstance(target, (int, float)) else "—",
                f"{reached}/{len(group.runs)}",
                fmt.seconds_stat(group.stat("total_train_time_s")),
                fmt.seconds_stat(group.stat("compile_time_s")),
            ]
        )
    section.blocks.append(
        Table(
            ["Model", "Dataset", "Device", "Params", "Seeds", "Final test acc", "Target",
             "Seeds ≥ target", "Training time", "Compile warm-up"],
            rows,
        )
    )  # fmt: skip
    return section


# -------------------------------------------------------------------------- energy


def _energy_to_target(group: RunGroup) -> Stat | None:
    """Energy up to the first epoch reaching the target, pro rata of training time (estimate)."""
    values = []
    for run in group.runs:
        m = run.metrics
        energy, seconds, total = (
            m.get("energy_kwh"),
            m.get("seconds_to_target"),
            m.get("total_train_time_s"),
        )
        if all(isinstance(v, (int, float)) for v in (energy, seconds, total)) and total > 0:
            values.append(energy * seconds / total)
    return Stat.of(values)


def _energy_section(data: ReportData, out: Path | None) -> Section:
    section = Section("energy", "Energy")
    if not data.finished:
        return section
    methods = Counter(str(r.metrics.get("energy_method", "not recorded")) for r in data.finished)
    notes = {str(n) for r in data.finished if (n := r.metrics.get("energy_note"))}
    section.blocks.append(
        Paragraph(
            "Energy is measured by CodeCarbon in offline mode around the whole run (data "
            "loading, training, evaluation), for this process only. Where the machine exposes no "
            "RAPL or NVML counters, CodeCarbon estimates CPU power from its TDP table and the "
            "measured load, so those figures are estimates, good for comparing runs on one "
            f"machine rather than absolute. Methods in this store: {_distinct_counts(methods)}."
            + (f" Notes: {'; '.join(sorted(notes))}." if notes else "")
        )
    )
    groups = [g for g in data.groups if g.stat("energy_kwh") is not None]
    if not groups:
        section.blocks.append(Paragraph("No finished run recorded an energy figure."))
        return section
    if out is not None:
        figure = figs.accuracy_vs_cost(
            data,
            out,
            name="accuracy_vs_energy",
            title="Accuracy vs energy",
            cost=lambda g: (
                None
                if (s := g.stat("energy_kwh")) is None
                else Stat(1000 * s.mean, None if s.std is None else 1000 * s.std, s.n)
            ),
            xlabel="energy per run, Wh (log; CodeCarbon)",
            caption="Energy of the whole run against honest test accuracy; the dashed line is "
            "the Pareto front (no configuration uses less energy for a higher accuracy).",
        )
        if figure is not None:
            section.blocks.append(figure)
    labels = group_labels(data.groups)
    front: set[str] = set()
    for dataset in {g.dataset for g in groups}:
        here = [g for g in groups if g.dataset == dataset and g.accuracy() is not None]
        points = [(g.stat("energy_kwh").mean, g.accuracy().mean) for g in here]  # type: ignore[union-attr]
        front |= {here[i].key for i in pareto_front(points)}
    rows = []
    for group in sorted(groups, key=lambda g: (g.dataset, g.stat("energy_kwh").mean)):  # type: ignore[union-attr]
        energy = group.stat("energy_kwh")
        accuracy = group.accuracy()
        epochs = Stat.of(r.metrics.get("epochs_completed") for r in group.runs)
        per_epoch = None
        if energy is not None and epochs is not None and epochs.mean > 0:
            per_epoch = 1000 * energy.mean / epochs.mean
        error_points = None if accuracy is None else 100 * (1 - accuracy.mean)
        rows.append(
            [
                labels[group.key],
                group.dataset,
                group.device,
                str(len(group.runs)),
                fmt.percent_stat(accuracy),
                fmt.number_stat(energy, scale=1000.0),
                fmt.number(per_epoch),
                fmt.number_stat(_energy_to_target(group), scale=1000.0),
                "—"
                if error_points is None or energy is None
                else fmt.number(1000 * energy.mean * error_points),
                "yes" if group.key in front else "",
            ]
        )
    section.blocks.append(
        Table(
            ["Configuration", "Dataset", "Device", "Seeds", "Test acc @ best val", "Energy (Wh)",
             "Wh per epoch", "Wh to target (est.)", "Wh × error %", "Pareto-optimal"],
            rows,
            caption="Sorted by energy. 'Wh to target' prorates the run's energy by the training "
            "time up to the first epoch whose validation accuracy reached the run's target "
            "(an estimate); 'Wh × error %' is lower for runs that are both frugal and accurate.",
        )
    )  # fmt: skip
    return section


def _distinct_counts(counts: Counter) -> str:
    return "; ".join(f"{name} ({n} runs)" for name, n in sorted(counts.items()))


# ------------------------------------------------------------------ image artefacts


def _images_section(data: ReportData, out: Path) -> Section:
    section = Section("images", "Image artefacts")
    folder = out / "artefacts"
    count, skipped = 0, 0
    for run in data.finished:
        for artefact in data.artefacts.get(run.run_id, []):
            kind = artefact.kind.lower()
            if kind not in ("png", "svg"):
                continue
            valid = (
                artefact.content.startswith(PNG_MAGIC)
                if kind == "png"
                else b"<svg" in artefact.content[:2000]
            )
            if not valid or count >= MAX_IMAGES:
                skipped += 1
                continue
            folder.mkdir(parents=True, exist_ok=True)
            stem = (
                Path(artefact.name).stem
                if artefact.name.lower().endswith(f".{kind}")
                else artefact.name
            )
            path = folder / f"run{run.run_id}_{figs._slug(stem)}.{kind}"
            path.write_bytes(artefact.content)
            section.blocks.append(
                Figure(
                    f"run {run.run_id} · {run.model} · {artefact.name}",
                    f"artefacts/{path.name}",
                    None,
                    f"{run.dataset}, seed {run.config.get('seed', '?')}",
                )
            )
            count += 1
    if skipped:
        section.blocks.append(
            Paragraph(
                f"{skipped} image artefacts were left out (not valid images, or over {MAX_IMAGES})."
            )
        )
    if data.finished and not section.blocks:
        section.blocks.append(Paragraph("No run in the store stored an image artefact."))
    return section


# ------------------------------------------------------------------ runs listed only


def _unfinished_section(data: ReportData) -> Section:
    rows = []
    for run in data.not_finished:
        epochs = run.metrics.get("epochs_completed")
        rows.append(
            [
                str(run.run_id),
                run.model,
                run.dataset,
                run.status,
                (run.error or "").replace("\n", " ")[:300],
                "—" if epochs is None else str(epochs),
                settings_vs_recipe(run),
                str(run.config.get("seed", "—")),
            ]
        )
    blocks: list[Paragraph | Table | Figure] = []
    if rows:
        blocks = [
            Paragraph(
                "Failed, diverged, interrupted and still-running runs are listed here and left "
                "out of every table above and every figure (a config that later finished shows "
                "its finished run instead)."
            ),
            Table(
                ["Run", "Model", "Dataset", "Status", "Error", "Epochs done", "Settings", "Seed"],
                rows,
            ),
        ]
    return Section(
        "not-finished", "Runs not finished (running, failed, interrupted, diverged)", blocks
    )


def _all_runs_section(data: ReportData) -> Section:
    if not data.finished:
        return Section("runs", "All finished runs")
    runs = sorted(data.finished, key=lambda r: (r.dataset, r.model, r.run_id))
    return Section(
        "runs",
        "All finished runs",
        [
            Paragraph("Every finished run (latest per configuration), one row per seed."),
            Table(list(RUNS_TABLE_COLUMNS), [runs_table_row(r) for r in runs]),
        ],
    )
