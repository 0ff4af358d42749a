"""Building a model from its ModelInfo, and checking it on a probe batch before a run starts.

Everything that can go wrong with a model the user named (a builder that rejects its options,
a factory that raises or returns something else, an input size the model cannot take, an
output that is not one score per class) becomes a ConfigError here, before any row exists.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from mnistbench.errors import ConfigError
from mnistbench.models.registry import ModelInfo

PROBE_BATCH = 2  # images in the probe batch (2: BatchNorm in training mode would need 2)


def build_model(info: ModelInfo, num_classes: int, options: Mapping[str, Any]) -> nn.Module:
    """`info.builder(num_classes=..., **entrypoint options)`, its failures as ConfigError.

    Stage options in `options` are checked and not passed (the recipe reads them). A registered
    builder's ValueError or TypeError is a rejected option value; an outside factory's every
    exception is reported, since its code is not ours to trust.
    """
    kwargs, _ = info.split_options(options)
    given = ", ".join(f"{k}={v!r}" for k, v in kwargs.items()) or "no options"
    outside = info.source.kind != "registered"
    caught = Exception if outside else (ValueError, TypeError)
    try:
        model = info.builder(num_classes=num_classes, **kwargs)
    except ConfigError:
        raise
    except caught as error:
        raise ConfigError(
            f"Model {info.name} could not be built with {given} (num_classes={num_classes}): "
            f"{type(error).__name__}: {error}. "
            + (
                "Its factory must take num_classes and return an nn.Module."
                if outside
                else "Check the --model-option values (`mnistbench list` names each option)."
            )
        ) from None
    if not isinstance(model, nn.Module):
        raise ConfigError(
            f"Model {info.name}: its factory returned {type(model).__name__!r}, not a "
            "torch.nn.Module. Return the network itself (e.g. nn.Sequential(...))."
        )
    return model


def check_model_output(
    model: nn.Module,
    name: str,
    num_classes: int,
    input_shape: tuple[int, int, int],
    device: str,
    *,
    fits_before_forward: bool = False,
) -> None:
    """Raise ConfigError unless `model` maps a probe batch of `input_shape` images to
    (batch, num_classes) scores. Runs in eval mode without gradients; the global random state
    is restored afterwards, so the run trains exactly as without the check. A model that must
    be fitted before it answers (`fits_before_forward`, scikit-learn) is checked on a copy
    fitted to a probe batch holding every class, which also catches estimator settings its
    library rejects (an SVM's C=-1)."""
    kind = torch.device(device).type
    batch = PROBE_BATCH * num_classes if fits_before_forward else PROBE_BATCH
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(batch, *input_shape, generator=generator).to(device)
    shape = tuple(images.shape)
    devices = [] if kind == "cpu" else [torch.device(device).index or 0]
    with torch.random.fork_rng(devices=devices, device_type=kind if devices else "cuda"):
        checked = model
        if fits_before_forward:
            checked = copy.deepcopy(model)
            labels = torch.arange(batch, device=device) % num_classes
            try:
                checked.fit_estimator(images, labels)
            except ConfigError:
                raise
            except Exception as error:  # its library rejected the settings
                raise ConfigError(
                    f"Model {name} could not be fitted on a probe batch of shape {shape}: "
                    f"{type(error).__name__}: {error} Check its --model-option values."
                ) from None
        try:
            was_training = checked.training
            checked.eval()
            try:
                with torch.no_grad():
                    output = checked(images)
            finally:
                checked.train(was_training)
        except ConfigError:
            raise
        except Exception as error:
            raise ConfigError(
                f"Model {name} cannot take a batch of shape {shape} (images of "
                f"{input_shape[-2]}x{input_shape[-1]} pixels; --image-size sets the size): "
                f"{type(error).__name__}: {error}"
            ) from None
    if not isinstance(output, torch.Tensor) or tuple(output.shape) != (batch, num_classes):
        got = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
        raise ConfigError(
            f"Model {name} gave {got} for a probe batch of shape {shape}; it must return "
            f"one score per class, (batch, num_classes) = ({batch}, {num_classes})."
        )
