"""A trained model as bytes that load without unpickling, and back.

Kept weights may arrive from other machines (`merge --with-weights`), so nothing here ever
unpickles: torch state dicts are safetensors (a JSON header and raw tensor bytes; the format
exists to be safe to load), the SVC's fitted state is an .npz of plain arrays read with
`np.load(allow_pickle=False)` (which refuses object arrays), and the LightGBM probe is
LightGBM's own text model, parsed by LightGBM, carried in the safetensors header's metadata
beside the encoder whose features it reads. Formats (`metrics["weights_format"]`):

- "safetensors": the model's state dict.
- "safetensors-lightgbm-text": the state dict, plus metadata "lightgbm_model" (the booster's
  text) and "lightgbm_classes" (JSON list) for study A's simsiam_lgbm.
- "svc-npz": models/svm.py's `fitted_arrays` (support vectors, dual coefficients, intercepts,
  support counts, classes, kernel parameters).
"""

from __future__ import annotations

import io
import json
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from mnistbench.errors import StoreError

SAFETENSORS = "safetensors"
SAFETENSORS_LIGHTGBM = "safetensors-lightgbm-text"
SVC_NPZ = "svc-npz"
FORMATS = (SAFETENSORS, SAFETENSORS_LIGHTGBM, SVC_NPZ)
MAX_HEADER_BYTES = 100_000_000  # safetensors' own limit on its JSON header


class WeightsFormatError(StoreError):
    """Kept weights that do not parse, or do not fit the model the run's record describes."""


@dataclass(frozen=True)
class SerializedWeights:
    """A model's weights as bytes, and their format."""

    format: str
    content: bytes


class LightGBMText:
    """A LightGBM probe read back from its text model: `predict_proba` and `classes_` as the
    LGBMClassifier that was fitted has them (recipes/features.py's `lightgbm_eval` reads both)."""

    def __init__(self, text: str, classes: list[int]):
        import lightgbm

        self.booster = lightgbm.Booster(model_str=text)
        self.classes_ = np.asarray(classes)

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        probabilities = np.asarray(self.booster.predict(features))
        return probabilities.reshape(len(features), -1)  # (N, classes seen by the fit)


def _fitted_arrays(model: nn.Module) -> dict[str, np.ndarray] | None:
    head = getattr(model, "head", None)
    fitted_arrays = getattr(head, "fitted_arrays", None)
    return fitted_arrays() if callable(fitted_arrays) else None


def serialize_model(model: nn.Module, lightgbm_probe: Any = None) -> SerializedWeights:
    """The trained `model` (and the LightGBM classifier its run fitted, if any) as bytes.

    Tensors are copied to the CPU and cloned, so tied parameters (which safetensors refuses to
    write as shared memory) are written twice and loaded into both places.
    """
    arrays = _fitted_arrays(model)
    if arrays is not None:
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        return SerializedWeights(SVC_NPZ, buffer.getvalue())
    from safetensors.torch import save

    tensors = {
        key: value.detach().to("cpu").contiguous().clone()
        for key, value in model.state_dict().items()
        if isinstance(value, torch.Tensor)
    }
    metadata = {"mnistbench": "state_dict"}
    form = SAFETENSORS
    if lightgbm_probe is not None:
        form = SAFETENSORS_LIGHTGBM
        metadata["lightgbm_model"] = lightgbm_probe.booster_.model_to_string()
        metadata["lightgbm_classes"] = json.dumps([int(c) for c in lightgbm_probe.classes_])
    return SerializedWeights(form, save(tensors, metadata=metadata))


def safetensors_metadata(content: bytes) -> dict[str, str]:
    """The `__metadata__` of a safetensors file: its 8-byte little-endian header length, then
    that much JSON (parsed with json, never executed)."""
    if len(content) < 8:
        raise WeightsFormatError("The weights file is too short to be a safetensors file.")
    (length,) = struct.unpack("<Q", content[:8])
    if length > min(MAX_HEADER_BYTES, len(content) - 8):
        raise WeightsFormatError("The weights file's safetensors header is longer than the file.")
    try:
        header = json.loads(content[8 : 8 + length])
    except ValueError as error:
        raise WeightsFormatError(
            f"The weights file's safetensors header is not JSON: {error}."
        ) from None
    metadata = (header.get("__metadata__") or {}) if isinstance(header, dict) else {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise WeightsFormatError("The weights file's safetensors metadata is not text.")
    return metadata


def restore_model(model: nn.Module, form: str, content: bytes) -> LightGBMText | None:
    """Load kept weights into `model` (built as the run built it); returns the LightGBM probe
    when the format carries one. Keys, shapes and dtypes must match exactly
    (WeightsFormatError otherwise)."""
    if form not in FORMATS:
        raise WeightsFormatError(f"Unknown weights format {form!r}; known: {', '.join(FORMATS)}.")
    if form == SVC_NPZ:
        load_arrays = getattr(getattr(model, "head", None), "load_arrays", None)
        if not callable(load_arrays):
            raise WeightsFormatError(f"{type(model).__name__} takes no SVC arrays ({form}).")
        try:
            with np.load(io.BytesIO(content), allow_pickle=False) as npz:
                arrays = {name: npz[name] for name in npz.files}
            load_arrays(arrays, device=_device_of(model))
        except (ValueError, KeyError, OSError) as error:
            raise WeightsFormatError(f"The SVC weights do not load: {error}.") from error
        return None
    from safetensors import SafetensorError
    from safetensors.torch import load

    try:
        tensors = load(content)
    except (SafetensorError, ValueError) as error:
        raise WeightsFormatError(f"The weights file is not valid safetensors: {error}.") from error
    expected = model.state_dict()
    wrong = [
        key
        for key, value in expected.items()
        if key not in tensors
        or tensors[key].shape != value.shape
        or tensors[key].dtype != value.dtype
    ]
    extra = sorted(set(tensors) - set(expected))
    if wrong or extra:
        raise WeightsFormatError(
            f"The kept weights do not fit {type(model).__name__}: "
            f"{len(wrong)} tensor(s) missing or of another shape/dtype ({', '.join(wrong[:3])}), "
            f"{len(extra)} unexpected ({', '.join(extra[:3])}). The model's code changed "
            "since the run; check out the commit the run names, or train again."
        )
    model.load_state_dict(tensors, strict=True)
    if form == SAFETENSORS_LIGHTGBM:
        metadata = safetensors_metadata(content)
        if "lightgbm_model" not in metadata or "lightgbm_classes" not in metadata:
            raise WeightsFormatError("The weights file lacks its LightGBM probe's text model.")
        try:
            return LightGBMText(
                metadata["lightgbm_model"], json.loads(metadata["lightgbm_classes"])
            )
        except Exception as error:  # LightGBM's parser raises its own LightGBMError
            raise WeightsFormatError(f"The LightGBM probe does not parse: {error}.") from error
    return None


def _device_of(model: nn.Module) -> torch.device:
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")
