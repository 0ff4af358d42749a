"""The report's opening: what the protocols mean, what the store holds, and where its runs ran
(from each run's stored environment, never from the machine building the report)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from mnistbench.report.cards import study_link
from mnistbench.report.collect import ReportData
from mnistbench.report.document import Figure, Paragraph, Table
from mnistbench.store import Artefact, RunRecord

STUDIES_A_AND_D = f"{study_link({}, 'A')} and {study_link({}, 'D')}"
# What each kind of column means, said once per table and only for the columns it has (a view's
# preamble describing columns its table lacks misleads more than it explains).
ACCURACY_NOTE = (
    "Accuracies are top-1 on the official 10,000-image test set (a `--subset` run is tested on "
    "its first N images only)."
)
ACCURACY_COLUMN_NOTES = {
    "acc_max": "'Best test acc' is the maximum of the test accuracy over epochs, the "
    f"(optimistic) protocol of the published {STUDIES_A_AND_D}",
    "acc_best_val": "'Test acc @ best val' is the test accuracy of the epoch chosen on a "
    "held-out validation split, the honest figure used in every plot",
    "acc_final": "'Final' is the model after its last epoch",
}
STUDY_PROTOCOL_NOTE = (
    "'Ours, study's protocol' picks our figure the way the study picked its own (the maximum of "
    f"the test accuracy over epochs for {STUDIES_A_AND_D}, optimistic; the final model for "
    "studies C and E); 'Ours, honest' is the test accuracy of the epoch chosen on a held-out "
    "validation split, the honest figure used in every plot."
)
TIME_NOTE = (
    "Time/epoch is training only (no evaluation), the median over epochs; on a CPU it shows the "
    "torch threads and the lowest share of their time any seed's training had the CPU ('CPU "
    "98%': the machine's speed; under 90% it says 'contended, not this machine's speed': other "
    "work shared the cores; 'CPU share not recorded': runs made before the share was measured, "
    "which trained beside other work, so not this machine's speed either); on a GPU, 'GPU "
    "shared: ≥N processes' where a process pool trained N runs side by side on it (its time is "
    "then not the GPU's alone)."
)
SEEDS_NOTE = (
    "Rows with several seeds show mean ± standard deviation over the seeds of one configuration. "
    "The bracket after an accuracy is its 95% interval: for one seed the Wilson score interval "
    "over the test images it was scored on, for several the hierarchical bootstrap of the mean "
    "over seeds and test images (docs/statistics.md)."
)
ENERGY_NOTE = (
    "Energy is in Wh everywhere, marked '≈ … (estimated)' where it is a power model × time "
    "rather than a measurement."
)
LINKS_NOTE = "Study links lead to docs/studies.md in the mnistbench repository."
_TIME_COLUMNS = ("time_epoch", "time_epoch_threads")


def protocols_for(column_names: Sequence[str]) -> str:
    """The notes for a table with these named columns (report.columns.COLUMNS), and no others."""
    accuracy = [note for name, note in ACCURACY_COLUMN_NOTES.items() if name in column_names]
    parts = [ACCURACY_NOTE]
    if len(accuracy) > 1:
        parts.append(f"{len(accuracy)} protocols are shown side by side: {'; '.join(accuracy)}.")
    elif accuracy:
        parts.append(accuracy[0] + ".")
    if any(name in column_names for name in _TIME_COLUMNS):
        parts.append(TIME_NOTE)
    parts.append(SEEDS_NOTE)
    if "energy" in column_names:
        parts.append(ENERGY_NOTE)
    if "study" in column_names:
        parts.append(LINKS_NOTE)
    return " ".join(parts)


# The reproduction and improved tables: their own columns, and times are not among them.
STUDY_TABLE_PROTOCOLS = " ".join((ACCURACY_NOTE, STUDY_PROTOCOL_NOTE, SEEDS_NOTE, LINKS_NOTE))
# Everything, for the full report and the README block (whose tables have every kind).
PROTOCOLS = protocols_for((*ACCURACY_COLUMN_NOTES, *_TIME_COLUMNS, "energy", "study")).replace(
    SEEDS_NOTE, f"{STUDY_PROTOCOL_NOTE} {SEEDS_NOTE}"
)
START = "No finished runs yet. Start one with `mnistbench run mlp`."


def distinct(values: Iterable[str]) -> str:
    """'a ×3; b': each distinct value once, with how many runs share it."""
    counts = Counter(values)
    return "; ".join(f"{v} ×{n}" if n > 1 else v for v, n in sorted(counts.items())) or "—"


def _machine(env: dict) -> str:
    """The device a run used, as its environment recorded it (CPU SIMD level and native bf16
    where recorded: machines with the same model name can differ in both). On a GPU those
    are the host CPU's, and say so, with its name."""
    text = f"{env.get('device', '?')}: {env.get('device_name', '?')}"
    details = [str(env["cpu_capability"])] if env.get("cpu_capability") else []
    if env.get("cpu_native_bf16"):
        details.append("native bf16")
    if env.get("device", "cpu") != "cpu" and details:
        details = [f"host CPU {env.get('cpu_model', '?')}: {', '.join(details)}"]
    return text + (f" ({', '.join(details)})" if details else "")


def commands(runs: Sequence[RunRecord], artefacts: dict[int, list[Artefact]]) -> list[str]:
    """Every distinct command a run stored as its 'command' artefact, oldest run first."""
    seen: dict[str, None] = {}
    for run in runs:
        for artefact in artefacts.get(run.run_id, []):
            if artefact.name == "command":
                seen.setdefault(artefact.content.decode("utf-8", errors="replace"))
    return list(seen)


SHORT_SHA = 10  # characters of a git SHA the summary shows
SHORT_LIST = 4  # distinct values a summary cell names before "+N more"


def short_list(values: Iterable[str]) -> str:
    """Each distinct value once, most runs first: 'a (80 runs), b (30 runs)', '+N more'."""
    counts = Counter(values).most_common()
    named = [f"{v} ({n} run{'s' if n > 1 else ''})" for v, n in counts[:SHORT_LIST]]
    more = f", +{len(counts) - SHORT_LIST} more" if len(counts) > SHORT_LIST else ""
    return ", ".join(named) + more if named else "—"


def latest_of(runs: Sequence[RunRecord], value) -> str:
    """'3 distinct; latest X': a version the runs recorded, collapsed to how many there are
    and the one of the most recent run."""
    ordered = sorted(runs, key=lambda r: r.started_at or "")
    seen = {value(r) for r in ordered}
    if not ordered:
        return "—"
    latest = value(ordered[-1])
    return latest if len(seen) == 1 else f"{len(seen)} distinct; latest {latest}"


def provenance(runs: Sequence[RunRecord]) -> list[list[str]]:
    """Rows of (what, values over the runs) from the runs' stored environments, every distinct
    value with its count (the committed views' provenance block)."""
    envs = [r.environment for r in runs]
    dates = sorted(r.started_at[:10] for r in runs if r.started_at)
    return [
        ["Devices", distinct(_machine(e) for e in envs)],
        ["Torch threads", distinct(str(e.get("torch_threads", "?")) for e in envs)],
        ["Hosts", distinct(str(r.hostname or r.environment.get("hostname", "?")) for r in runs)],
        ["torch", distinct(str(e.get("torch_version", "?")) for e in envs)],
        ["Python", distinct(str(e.get("python_version", "?")) for e in envs)],
        [
            "mnistbench (git)",
            distinct(f"{e.get('mnistbench_version', '?')} ({e.get('git_sha', '?')})" for e in envs),
        ],
        ["Recorded", f"{dates[0]} to {dates[-1]}" if dates else "—"],
    ]


def store_summary(runs: Sequence[RunRecord]) -> list[list[str]]:
    """The report's store summary, read in one glance: machines as short lists, versions
    collapsed to a count and the latest."""
    dates = sorted(r.started_at[:10] for r in runs if r.started_at)
    return [
        ["Devices", short_list(_machine(r.environment) for r in runs)],
        ["Torch threads", short_list(str(r.environment.get("torch_threads", "?")) for r in runs)],
        ["Hosts", short_list(str(r.hostname or r.environment.get("hostname", "?")) for r in runs)],
        ["torch", latest_of(runs, lambda r: str(r.environment.get("torch_version", "?")))],
        ["Python", latest_of(runs, lambda r: str(r.environment.get("python_version", "?")))],
        [
            "mnistbench (git)",
            latest_of(
                runs,
                lambda r: (
                    f"{r.environment.get('mnistbench_version', '?')} "
                    f"({str(r.environment.get('git_sha', '?'))[:SHORT_SHA]})"
                ),
            ),
        ],
        ["Recorded", f"{dates[0]} to {dates[-1]}" if dates else "—"],
    ]


def intro(data: ReportData) -> list[Paragraph | Table | Figure]:
    blocks: list[Paragraph | Table | Figure] = [
        Paragraph(f"Store: `{data.store_path}`. {PROTOCOLS}")
    ]
    if not data.runs:
        blocks.append(Paragraph(START))
        return blocks
    statuses = Counter(r.status for r in data.runs)
    summary = [
        ["Runs (latest per config)", ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))],
        ["Configurations (seeds merged)", str(len(data.groups))],
        ["Models", ", ".join(sorted({r.model for r in data.runs}))],
        ["Datasets", ", ".join(sorted({r.dataset for r in data.runs}))],
        *store_summary(data.runs),
    ]
    if not data.finished:
        blocks.append(Paragraph(START))
    blocks.append(Table(["Store", ""], summary))
    return blocks
