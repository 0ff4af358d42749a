"""The run format's schema (version 1): what a run record may hold, checked at the store's
boundary before anything is written (a JSON-lines line in ``merge``) and on every row read back
(a store written by hand or by an old version gets the same one-paragraph error).

Why pydantic v2 and not jsonschema: the config part is derived from ``RunConfig``'s own fields
(their types, choices and checks, see ``config.py``), so a field another branch adds (e.g.
``protocol``) is covered without a second list, and that is a few lines with pydantic's
``create_model`` where jsonschema would need a hand-built schema translated from the type hints;
pydantic's errors carry the path of the bad value (``config.epochs``), which the message names;
and its Rust core validates a few hundred records per report in milliseconds.

What it checks: types (strict: a string is never an epoch count), finite numbers, integers
within SQLite's 64 bits, string lengths (names of models, datasets and hosts at most
``NAME_MAX_CHARS``), nesting depth, the enums the code has (status, config choices), that
``config_hash`` is the hash of ``config`` computed here, and that ``model``/``dataset`` agree
with the config. The line's own size cap is the reader's (``LINE_MAX_BYTES``, store/jsonl.py).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import math
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    create_model,
    model_validator,
)

from mnistbench.config import RunConfig
from mnistbench.errors import StoreError
from mnistbench.settings import value_kind
from mnistbench.store.records import RUN_STATUSES

SCHEMA_VERSION = 1  # the run format's version (the export's "format_version")
NAME_MAX_CHARS = 300  # model, dataset, host, artefact names
TEXT_MAX_CHARS = 20_000  # free text: errors, notes, energy scope
MAX_DEPTH = 10  # nesting of free-form objects (committed records nest 6 deep at most)
MAX_ITEMS = 100_000  # entries of one free-form list or object (a curve of every step)
MAX_EPOCHS = 100_000
MAX_ARTEFACTS = 64
# One artefact's content as it travels: per-image predictions are tens of KB compressed, so a
# few hundred KB of base64 at most; 2 MiB leaves room without letting a line grow unbounded.
ARTEFACT_MAX_CHARS = 2 * 1024 * 1024
# One line of an export: a run with its epochs, card and artefacts is 5-20 KB today; with its
# per-image predictions a few hundred KB. A longer line is refused unread past the cap.
LINE_MAX_BYTES = 4 * 1024 * 1024
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

_SURROGATE = re.compile(r"[\ud800-\udfff]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class RecordError(StoreError):
    """A run record (a line of an export, or a row of a store) breaks the run format;
    ``problem`` is the clause that says how (without where)."""

    def __init__(self, message: str, *, problem: str = "") -> None:
        super().__init__(message)
        self.problem = problem or message


# ---------------------------------------------------------------------------- value checks


def _text(value: str) -> str:
    if _SURROGATE.search(value):
        raise ValueError("holds a lone surrogate, which is not text (it cannot be stored)")
    return value


def _name(value: str) -> str:
    _text(value)
    if _CONTROL.search(value):
        raise ValueError("holds control characters (newlines, escapes), not allowed in a name")
    return value


def bounded_json(value: Any, depth: int = 0) -> Any:
    """Any JSON value within the format's bounds (depth, sizes, finite numbers, 64-bit ints)."""
    if depth > MAX_DEPTH:
        raise ValueError(f"nests deeper than {MAX_DEPTH} levels")
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise ValueError("is an integer beyond 64 bits")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("is not a finite number")
        return value
    if isinstance(value, str):
        if len(value) > TEXT_MAX_CHARS:
            raise ValueError(f"is text longer than {TEXT_MAX_CHARS:,} characters")
        return _text(value)
    if isinstance(value, (list, dict)):
        if len(value) > MAX_ITEMS:
            raise ValueError(f"has more than {MAX_ITEMS:,} entries")
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            if isinstance(key, str) and (len(key) > NAME_MAX_CHARS or _SURROGATE.search(key)):
                raise ValueError("has a key that is too long or not text")
            bounded_json(item, depth + 1)
        return value
    raise ValueError(f"is a {type(value).__name__}, not a JSON value")


Int64 = Annotated[int, Strict(), Field(ge=INT64_MIN, le=INT64_MAX)]
Count = Annotated[int, Strict(), Field(ge=0, le=INT64_MAX)]
Real = Annotated[float, Strict(), Field(allow_inf_nan=False)]
Fraction = Annotated[float, Strict(), Field(ge=0.0, le=1.0, allow_inf_nan=False)]
Name = Annotated[
    str, Strict(), Field(min_length=1, max_length=NAME_MAX_CHARS), AfterValidator(_name)
]
Text = Annotated[str, Strict(), Field(max_length=TEXT_MAX_CHARS), AfterValidator(_text)]
Stamp = Annotated[str, Strict(), Field(min_length=1, max_length=64), AfterValidator(_name)]
Hex = Annotated[str, Strict(), Field(pattern=r"^[0-9a-f]{16,64}$")]
Json = Annotated[Any, AfterValidator(bounded_json)]
JsonObject = Annotated[dict[str, Any], AfterValidator(bounded_json)]


class _Open(BaseModel):
    """An object with some known fields; the others are bounded JSON."""

    model_config = ConfigDict(extra="allow", strict=True)
    __pydantic_extra__: dict[str, Json]


# ---------------------------------------------------------------------------- the config


def _config_type(f: dataclasses.Field) -> Any:
    """The schema type of one RunConfig field, from its declaration (type, choices)."""
    kind = value_kind(f)
    optional = "None" in str(f.type)
    if f.metadata.get("choices"):
        base: Any = Literal[tuple(f.metadata["choices"])]  # type: ignore[misc]
    elif kind == "table":  # model options: [[name, value], ...]
        base = Annotated[list[tuple[Name, bool | Int64 | Real | Text]], Field(max_length=64)]
    else:
        base = {"bool": Annotated[bool, Strict()], "int": Int64, "float": Real}.get(kind, Name)
    return base | None if optional else base


def _config_model(extra: Literal["forbid", "allow"] = "forbid") -> type[BaseModel]:
    """The config schema: one field per RunConfig field (a stored config may lack the ones added
    after it was written: the default applies, as in ``RunConfig.from_dict``); unknown keys are
    refused (``extra="allow"``: kept as bounded JSON, for rows read back); every field's own
    check (config.py) runs on what is given."""
    definitions: dict[str, Any] = {}
    for f in dataclasses.fields(RunConfig):
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        definitions[f.name] = (_config_type(f), ... if required else None)

    def checks(self: BaseModel) -> BaseModel:
        bounded_json(self.__pydantic_extra__ or {})
        for f in dataclasses.fields(RunConfig):
            check = f.metadata.get("check")
            if f.name in self.model_fields_set and check is not None:
                value = getattr(self, f.name)
                if f.metadata["choices"] is None and not check.test(_plain(value)):
                    raise ValueError(f"config.{f.name} = {value!r} {check.rule}")
        return self

    return create_model(
        "StoredConfig" if extra == "forbid" else "ReadConfig",
        __config__=ConfigDict(extra=extra, strict=False),
        __validators__={"checks": model_validator(mode="after")(checks)},
        **definitions,
    )


def _plain(value: Any) -> Any:
    return [tuple(pair) for pair in value] if isinstance(value, list) else value


StoredConfig = _config_model()
ReadConfig = _config_model("allow")


def stored_config_hash(config: Mapping[str, Any]) -> str:
    """The hash this mnistbench computes for a stored config (``RunConfig.config_hash``)."""
    known = {f.name for f in dataclasses.fields(RunConfig)}
    return RunConfig.from_dict({k: v for k, v in config.items() if k in known}).config_hash()


# ---------------------------------------------------------------------------- the rest


class Metrics(_Open):
    """Run metrics: open (each version adds some), with the shared names typed."""

    test_accuracy_ci95: Annotated[list[Fraction], Field(min_length=2, max_length=2)] | None = None
    n_test: Count | None = None
    weights_sha256: Annotated[str, Strict(), Field(pattern=r"^[0-9a-f]{64}$")] | None = None
    weights_format: Annotated[str, Strict(), Field(pattern=r"^[a-z0-9._-]{1,32}$")] | None = None
    weights_bytes: Count | None = None
    params: Count | None = None
    epochs_completed: Count | None = None

    @model_validator(mode="after")
    def _accuracies(self) -> Metrics:
        for key, value in (self.__pydantic_extra__ or {}).items():
            if key.endswith("accuracy") and value is not None:
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise ValueError(f"metrics.{key} is not a number")
                if not 0.0 <= value <= 1.0:
                    raise ValueError(f"metrics.{key} = {value!r} is not a fraction in [0, 1]")
        ci = self.test_accuracy_ci95
        if ci is not None and ci[0] > ci[1]:
            raise ValueError("metrics.test_accuracy_ci95's low end is above its high end")
        return self


class RecipeCard(_Open):
    of: Name | None = None
    defaults: JsonObject = Field(default_factory=dict)
    stages: Annotated[list[JsonObject], Field(max_length=64)] = Field(default_factory=list)
    headline_stage: Name | None = None


class ModelCard(_Open):
    """The fields of a model card the report reads, typed; the rest bounded JSON."""

    card_version: Count | None = None
    model: Name | None = None
    family: Name | None = None
    architecture: Text | None = None
    source: JsonObject | None = None
    fingerprint: Name | None = None
    input_shape: Annotated[list[Count], Field(max_length=4)] | None = None
    input_scaling: Name | None = None
    tags: Annotated[list[Name], Field(max_length=64)] = Field(default_factory=list)
    recipe: RecipeCard | None = None
    setting_roles: dict[Name, Name] = Field(default_factory=dict)
    published: Annotated[list[JsonObject], Field(max_length=1000)] = Field(default_factory=list)
    studies: dict[Name, JsonObject] = Field(default_factory=dict)
    measurement: JsonObject | None = None


class Epoch(_Open):
    epoch: Annotated[int, Strict(), Field(ge=1, le=MAX_EPOCHS)]
    stage: Name | None = None


class ArtefactEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: Annotated[str, Strict(), Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$")]
    kind: Annotated[str, Strict(), Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")]
    created_at: Stamp | None = None
    text: Annotated[str, Strict(), Field(max_length=ARTEFACT_MAX_CHARS)] | None = None
    base64: Annotated[str, Strict(), Field(max_length=ARTEFACT_MAX_CHARS)] | None = None

    @model_validator(mode="after")
    def _one_content(self) -> ArtefactEntry:
        if (self.text is None) == (self.base64 is None):
            raise ValueError(f"artefact {self.name!r} needs exactly one of 'text' and 'base64'")
        if self.text is not None:
            _text(self.text)
        else:
            try:
                base64.b64decode(self.base64 or "", validate=True)
            except (binascii.Error, ValueError):
                raise ValueError(f"artefact {self.name!r}: 'base64' is not base64") from None
        return self


class RowFields(BaseModel):
    """A run as a store row holds it, checked on every read: the shape the readers rely on
    (types, bounds, depth), so a row written by hand or by an old version gets one clear error
    instead of a traceback in the report. What only matters when runs travel (the config's
    exact keys, that config_hash is its hash) is checked on import (``RunFields``)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    config_hash: Name
    model: Name
    dataset: Name
    status: Literal[RUN_STATUSES]  # type: ignore[valid-type]
    error: Text | None
    started_at: Stamp
    finished_at: Stamp | None
    hostname: Name | None
    fingerprint: Name | None = None
    config: ReadConfig  # type: ignore[valid-type]
    environment: JsonObject
    metrics: Metrics
    model_card: ModelCard


class RunFields(RowFields):
    """One run as the export writes it (less epochs and artefacts, which a store keeps in
    tables of their own), checked before it is imported: a store row's fields, with the
    identity fields held to what a fresh export writes."""

    config_hash: Annotated[str, Strict(), Field(pattern=r"^[0-9a-f]{16}$")]
    dataset: Annotated[str, Strict(), Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    fingerprint: Hex | None = None
    config: StoredConfig  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _consistent(self) -> RunFields:
        config = self.config.model_dump(exclude_unset=True)  # type: ignore[attr-defined]
        if config.get("model") != self.model or config.get("dataset", "mnist") != self.dataset:
            raise ValueError(
                f"its model/dataset ({self.model!r}, {self.dataset!r}) are not its config's"
            )
        computed = stored_config_hash(config)
        if computed != self.config_hash:
            raise ValueError(
                f"its config_hash {self.config_hash} is not the hash of its config "
                f"({computed}): the config was edited after the run, or the hash forged"
            )
        return self


class ExportLine(RunFields):
    format: Literal["mnistbench-run"]
    format_version: Annotated[int, Strict(), Field(ge=1, le=SCHEMA_VERSION)]
    status: Literal[tuple(s for s in RUN_STATUSES if s != "running")]  # type: ignore[misc]
    epochs: Annotated[list[Epoch], Field(max_length=MAX_EPOCHS)]
    artefacts: Annotated[list[ArtefactEntry], Field(max_length=MAX_ARTEFACTS)]


# ---------------------------------------------------------------------------- entry points


def describe(error: ValidationError, limit: int = 3) -> str:
    """pydantic's errors as one clause: 'config.epochs: Input should be a valid integer; ...'."""
    parts = []
    for entry in error.errors(include_url=False)[:limit]:
        where = ".".join(str(part) for part in entry["loc"]) or "the record"
        message = str(entry["msg"]).removeprefix("Value error, ")
        given = entry.get("input")
        shown = ""
        if entry["type"] not in ("missing", "value_error") and not isinstance(given, (dict, list)):
            text = repr(given)
            shown = f" (got {text[:60]}{'…' if len(text) > 60 else ''})"
        parts.append(f"{where}: {message}{shown}")
    more = error.error_count() - limit
    return "; ".join(parts) + (f"; and {more} more problem(s)" if more > 0 else "")


def problem_of(schema: type[BaseModel], value: Any) -> str | None:
    """Why ``value`` breaks ``schema``, as one clause, or None when it fits."""
    try:
        schema.model_validate(value)
    except ValidationError as error:
        return describe(error)
    except (RecursionError, ValueError, TypeError) as error:  # nesting deeper than the stack
        return f"the record cannot be checked ({type(error).__name__})"
    return None


def check_export_line(line: Any) -> str | None:
    """Why a parsed export line is not a valid run record, or None."""
    if not isinstance(line, dict):
        return "it is not a JSON object"
    return problem_of(ExportLine, line)


def check_run_fields(values: Mapping[str, Any]) -> str | None:
    """Why a run about to be imported breaks the run format, or None."""
    return problem_of(RunFields, dict(values))


def check_row(values: Mapping[str, Any]) -> str | None:
    """Why a run read from a store has a shape the readers cannot take, or None."""
    return problem_of(RowFields, dict(values))


def check_epoch(values: Mapping[str, Any]) -> str | None:
    return problem_of(Epoch, dict(values))


def invalid_records_message(invalid: list[Any], shown: int = 10) -> str:
    """The paragraph that refuses a merge: each bad record (``InvalidRecord``) and its problem."""
    listed = "; ".join(f"{bad.where}: {bad.problem}" for bad in invalid[:shown])
    more = f"; and {len(invalid) - shown} more" if len(invalid) > shown else ""
    return (
        f"{len(invalid)} record(s) are not valid mnistbench runs, so nothing was merged from "
        f"this source (a merge is all or nothing): {listed}{more}. Fix or remove those "
        "records, or pass --skip-invalid to merge the valid ones and list the others."
    )


_ARTEFACT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$")
_ARTEFACT_KIND = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
STORED_ARTEFACT_MAX_BYTES = (
    64 * 1024 * 1024
)  # a store's PNGs and predictions, merged store-to-store


def check_stored(run: Any, epochs: list[dict], artefacts: list[Any] = ()) -> str | None:
    """Why a run about to be imported (a ``RunRecord``, its epochs and its ``Artefact``s)
    breaks the run format."""
    fields = {
        key: getattr(run, key)
        for key in (
            "config_hash", "model", "dataset", "status", "error", "started_at", "finished_at",
            "hostname", "fingerprint", "config", "environment", "metrics", "model_card",
        )
    }  # fmt: skip
    problem = check_run_fields(fields)
    for epoch in epochs:
        if problem is None and (found := check_epoch(epoch)) is not None:
            problem = f"epoch {epoch.get('epoch')!r}: {found}"
    for artefact in artefacts:
        if problem is not None:
            break
        name, kind = artefact.name, artefact.kind
        if not (isinstance(name, str) and _ARTEFACT_NAME.match(name)):
            problem = f"artefact name {str(name)[:60]!r} is not a name (letters, digits, ._:-)"
        elif not (isinstance(kind, str) and _ARTEFACT_KIND.match(kind)):
            problem = f"artefact {name!r} has kind {str(kind)[:40]!r}, not a short lowercase word"
        elif len(artefact.content) > STORED_ARTEFACT_MAX_BYTES:
            problem = f"artefact {name!r} is larger than 64 MiB"
    return problem
