"""The PNG and SVG images runs stored (sample grids, spike rasters), copied beside the page."""

from __future__ import annotations

from pathlib import Path

from mnistbench.report.collect import ReportData
from mnistbench.report.document import Figure, Paragraph, Section
from mnistbench.report.figures import slug
from mnistbench.store import Artefact

MAX_IMAGES = 40
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _valid(artefact: Artefact, kind: str) -> bool:
    if kind == "png":
        return artefact.content.startswith(PNG_MAGIC)
    return b"<svg" in artefact.content[:2000]


def section(data: ReportData, out: Path | None) -> list[Section]:
    if out is None:
        return []
    found = Section("images", "Image artefacts")
    folder = out / "artefacts"
    count, skipped = 0, 0
    for run in data.finished:
        for artefact in data.artefacts.get(run.run_id, []):
            kind = artefact.kind.lower()
            if kind not in ("png", "svg"):
                continue
            if not _valid(artefact, kind) or count >= MAX_IMAGES:
                skipped += 1
                continue
            folder.mkdir(parents=True, exist_ok=True)
            name = artefact.name
            stem = Path(name).stem if name.lower().endswith(f".{kind}") else name
            path = folder / f"run{run.run_id}_{slug(stem)}.{kind}"
            path.write_bytes(artefact.content)
            found.blocks.append(
                Figure(
                    f"run {run.run_id} · {run.model} · {name}",
                    f"artefacts/{path.name}",
                    None,
                    f"{run.dataset}, seed {run.config.get('seed', '?')}",
                )
            )
            count += 1
    if skipped:
        found.blocks.append(
            Paragraph(
                f"{skipped} image artefacts were left out (not valid images, or over {MAX_IMAGES})."
            )
        )
    if data.finished and not found.blocks:
        found.blocks.append(Paragraph("No run in the store stored an image artefact."))
    return [found]
