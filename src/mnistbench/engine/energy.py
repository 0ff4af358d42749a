"""Energy of one run through CodeCarbon, with what it covers and whether it was measured.

CodeCarbon reads a power counter where one exists (RAPL for the CPU package, NVML for an
NVIDIA GPU, powermetrics on Apple chips) and otherwise models power: the CPU as its TDP times
the load, RAM from its size. A modelled figure is power x time, so it carries no information
that the run's duration does not; `energy_measured` says which one a run got, read from
CodeCarbon's own hardware objects, never guessed from their names.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch

from mnistbench.engine.environment import cuda_device_index

_CPU_COUNTERS = {
    "intel_rapl": "RAPL energy counter of the whole CPU package (every process on it)",
    "windows_emi": "Windows Energy Meter counter of the whole CPU package (every process on it)",
    "intel_power_gadget": "Intel Power Gadget counter of the whole CPU package",
}


@dataclass(frozen=True)
class EnergySource:
    """One part CodeCarbon accounted for, as its hardware object says."""

    part: str  # "cpu", "gpu", "ram" or "other"
    measured: bool  # read from a sensor or counter, not a model of power
    description: str  # one clause for the run's energy_scope


def describe_hardware(hardware: object) -> EnergySource:
    """What one of a tracker's hardware objects measures (codecarbon 3.x classes)."""
    from codecarbon.external.hardware import CPU, GPU, AppleSiliconChip, Raspberry
    from codecarbon.external.ram import RAM

    if isinstance(hardware, GPU):
        ids = hardware.gpu_ids if hardware.gpu_ids is not None else list(range(hardware.num_gpus))
        devices = [d for d in hardware.devices.devices if d.gpu_index in ids]
        counters = bool(devices) and all(
            d._has_counter and not d._use_power_fallback for d in devices
        )
        how = "NVML energy counter" if counters else "NVML power readings x time"
        where = f"GPU {', '.join(map(str, ids))}"
        return EnergySource("gpu", True, f"{where}: {how} of the whole device (every process)")
    if isinstance(hardware, CPU):
        mode, tdp = hardware._mode, hardware._tdp
        if mode in _CPU_COUNTERS:
            return EnergySource("cpu", True, f"CPU: {_CPU_COUNTERS[mode]}")
        if mode == "cpu_load" and hardware._tracking_mode == "process":
            share = "this process's (and its children's) share of the CPU time"
            return EnergySource("cpu", False, f"CPU: modelled, TDP {tdp} W x {share}")
        if mode == "cpu_load":
            return EnergySource("cpu", False, f"CPU: modelled, TDP {tdp} W x the machine's load")
        return EnergySource("cpu", False, f"CPU: modelled, half its TDP ({tdp} W) at any load")
    if isinstance(hardware, AppleSiliconChip):
        return EnergySource("cpu", True, f"{hardware.chip_part}: powermetrics, whole chip")
    if isinstance(hardware, Raspberry):
        return EnergySource("cpu", True, "CPU: the board's power-management sensor")
    if isinstance(hardware, RAM):
        size = "this process's memory" if hardware._tracking_mode == "process" else "all RAM"
        return EnergySource("ram", False, f"RAM: modelled from {size} (watts per DIMM)")
    return EnergySource("other", False, f"{hardware!r}: not known to mnistbench")


@dataclass
class EnergyReading:
    """A run's energy and how it was obtained (all energies in kWh)."""

    energy_kwh: float | None
    measured: bool | None  # True: every processor part read from a counter; None: no figure
    method: str  # CodeCarbon's hardware list, or "unavailable" / "disabled"
    scope: str  # what the figure covers: which stretch of the run, which hardware
    reason: str | None = None  # why energy_kwh is None
    cpu_kwh: float | None = None
    gpu_kwh: float | None = None
    ram_kwh: float | None = None

    def as_metrics(self) -> dict[str, object]:
        return {
            "energy_kwh": self.energy_kwh,
            "energy_measured": self.measured,
            "energy_scope": self.scope,
            "energy_method": self.method,
            "energy_note": self.reason,
            "energy_cpu_kwh": self.cpu_kwh,
            "energy_gpu_kwh": self.gpu_kwh,
            "energy_ram_kwh": self.ram_kwh,
        }


def disabled_reading(covers: str) -> EnergyReading:
    return EnergyReading(None, None, "disabled", covers, "energy measurement turned off")


def nvml_index(device: str | torch.device) -> int:
    """NVML's index of the run's CUDA device: CUDA numbers the devices it sees (after
    CUDA_VISIBLE_DEVICES, fastest first), NVML every device on the bus, so match by UUID."""
    index = cuda_device_index(device)
    try:
        import pynvml

        pynvml.nvmlInit()
        wanted = str(torch.cuda.get_device_properties(index).uuid)
        for nvml in range(pynvml.nvmlDeviceGetCount()):
            uuid = pynvml.nvmlDeviceGetUUID(pynvml.nvmlDeviceGetHandleByIndex(nvml))
            uuid = uuid.decode() if isinstance(uuid, bytes) else str(uuid)
            if uuid.removeprefix("GPU-") == wanted:
                return nvml
    except Exception:  # no NVML: CodeCarbon will have no GPU reading either
        pass
    return index


def _name(hardware: object) -> str:
    try:
        return repr(hardware)  # e.g. "CPU(Cpu Load)", "GPU(NVIDIA H200)"; some query NVML
    except Exception:
        return type(hardware).__name__


def _default_tracker(**options: object):
    from codecarbon import OfflineEmissionsTracker

    # codecarbon sets its logger to INFO on import; its start-up chatter is not ours
    logging.getLogger("codecarbon").setLevel(logging.ERROR)
    return OfflineEmissionsTracker(**options)


class EnergyMeter:
    """CodeCarbon's offline tracker around a stretch of work; never fails the run.

    `covers` names the stretch (it starts the scope sentence). On a CUDA device only that GPU is
    read (CodeCarbon would otherwise add every visible GPU), and NVML's counter is the whole
    device's: a second run on the same GPU at the same time is counted in both. Offline mode
    needs no network (the country only sets the carbon intensity, which is not recorded).
    """

    def __init__(
        self,
        covers: str,
        *,
        device: str = "cpu",
        country_iso_code: str = "USA",
        measure_power_secs: float = 5.0,
        tracker_factory: Callable[..., object] = _default_tracker,
    ):
        self.covers = covers
        self._tracker = None
        self._error: str | None = None
        self._reading: EnergyReading | None = None
        options: dict[str, object] = {
            "country_iso_code": country_iso_code,
            "output_methods": [],  # the figures go to our store, not to emissions.csv
            "log_level": "error",
            "measure_power_secs": measure_power_secs,
            "tracking_mode": "process",  # CPU load and RAM of this process (counters: see above)
        }
        try:
            if torch.device(device).type == "cuda":
                options["gpu_ids"] = [nvml_index(device)]
            self._tracker = tracker_factory(**options)
        except Exception as error:  # CodeCarbon's failures must not end a training run
            self._error = f"{type(error).__name__}: {error}"

    def start(self) -> None:
        if self._tracker is None:
            return
        try:
            self._tracker.start()
        except Exception as error:
            self._error, self._tracker = f"{type(error).__name__}: {error}", None

    def stop(self) -> EnergyReading:
        """End the measurement (its background thread too); later calls return the same reading."""
        if self._reading is not None:
            return self._reading
        if self._tracker is None:
            reason = self._error or "codecarbon not started"
            self._reading = EnergyReading(None, None, "unavailable", self.covers, reason)
            return self._reading
        try:
            self._tracker.stop()
            self._reading = self._read(self._tracker)
        except Exception as error:
            reason = f"{type(error).__name__}: {error}"
            self._reading = EnergyReading(None, None, "unavailable", self.covers, reason)
        return self._reading

    def _read(self, tracker) -> EnergyReading:
        data = tracker.final_emissions_data
        hardware = list(getattr(tracker, "_hardware", []))
        sources = [describe_hardware(h) for h in hardware]
        processors = [s for s in sources if s.part in ("cpu", "gpu")]
        measured = bool(processors) and all(s.measured for s in processors)
        scope = f"{self.covers}. " + "; ".join(s.description for s in sources) + "."
        return EnergyReading(
            energy_kwh=float(data.energy_consumed),
            measured=measured,
            method="codecarbon " + ", ".join(_name(h) for h in hardware),
            scope=scope,
            cpu_kwh=float(data.cpu_energy),
            gpu_kwh=float(data.gpu_energy),
            ram_kwh=float(data.ram_energy),
        )
