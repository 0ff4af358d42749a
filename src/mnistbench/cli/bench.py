"""`mnistbench bench peak`: measure this machine's peak matmul and conv FLOP rates once and
cache them (engine/peaks.py), so every later run reports `fraction_of_peak`."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from mnistbench.cli.common import start_training, whole_number
from mnistbench.config import DEVICE_CHOICES
from mnistbench.errors import ConfigError, MeasurementDisturbedError

DESCRIPTION = (
    "Measure this machine's best matmul rate (square sizes, fp32 and bf16; on CUDA also TF32 and "
    "fp16) and a representative conv rate (64->64 channels, 3x3, 28 px), and save them to the "
    "peak cache, keyed by the machine's fingerprint (CPU, SIMD level, torch threads, torch "
    "version, GPU). Runs read the cache to report fraction_of_peak (a run that finds no peak "
    "for its precision measures that one itself, after training). Run it on a quiet machine: "
    "anything else running lowers the figures, so on a CPU each precision records the share of "
    "the machine's CPU time other processes took meanwhile; above the limit the table states, "
    "nothing is saved and the command fails."
)


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated whole numbers, e.g. 512,1024, got {text!r}"
        ) from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"matrix sizes must be at least 1, got {text!r}")
    return sizes


def _precisions(text: str) -> tuple[str, ...]:
    keys = tuple(dict.fromkeys(part.strip().lower() for part in text.split(",")))
    known = ("fp32", "tf32", "bf16", "fp16")
    unknown = [key for key in keys if key not in known]
    if not keys or "" in keys or unknown:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated precisions out of {', '.join(known)}, got {text!r}"
        )
    return keys


def register(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser(
        "bench", help="measure the machine: peak FLOP rates (bench peak)", description=DESCRIPTION
    )
    actions = p.add_subparsers(dest="bench_verb", metavar="WHAT", required=True)
    peak = actions.add_parser(
        "peak", help="measure and cache peak FLOP rates", description=DESCRIPTION
    )
    peak.add_argument("--device", choices=DEVICE_CHOICES, default="auto")
    peak.add_argument(
        "--sizes",
        type=_sizes,
        help="square matmul sizes, comma-separated; the best counts "
        "(default 512,1024,2048 on CPU, 2048,4096,8192 on CUDA)",
    )
    peak.add_argument(
        "--repeats", type=whole_number, default=5, help="timed repeats per shape (default 5)"
    )
    peak.add_argument(
        "--precisions",
        type=_precisions,
        help="measure only these, comma-separated (fp32, bf16; on CUDA also tf32, fp16); the "
        "cached rates of the others are kept. Default: all of them (bf16 takes minutes where "
        "the CPU emulates it)",
    )
    peak.add_argument(
        "--show",
        action="store_true",
        help="print the cached peaks of this machine; measure nothing",
    )
    peak.add_argument("--json", action="store_true", help="print the peaks as JSON")
    peak.add_argument(
        "--threads", type=whole_number, help="torch threads to measure with (default torch's)"
    )
    peak.set_defaults(handler=cmd_bench_peak)


def cmd_bench_peak(args: argparse.Namespace) -> int:
    start_training()
    import torch

    from mnistbench.engine import resolve_device
    from mnistbench.engine.peaks import (
        BENCH_PEAK_HINT,
        MAX_OTHERS_CPU_SHARE,
        describe_peaks,
        load_peaks,
        measure_peaks,
        merge_peaks,
        peak_keys,
        peaks_path,
        save_peaks,
    )

    if args.repeats < 1:
        raise ConfigError(f"--repeats must be at least 1, got {args.repeats}.")
    if args.threads is not None:
        if args.threads < 1:
            raise ConfigError(f"--threads must be at least 1, got {args.threads}.")
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    path = peaks_path()
    disturbed: list[str] = []  # precisions measured while other processes held the CPU
    kept: list[str] = []  # cached precisions --precisions left as they were
    if args.show:
        peaks = load_peaks(device)
        if peaks is None:
            raise ConfigError(
                f"No peaks cached for this machine ({device}, {torch.get_num_threads()} torch "
                f"threads) in {path}: {BENCH_PEAK_HINT} (without --show)."
            )
        saved_to = None
    else:
        keys = args.precisions
        if keys is not None:
            missing = [key for key in keys if key not in peak_keys(device)]
            if missing:
                raise ConfigError(
                    f"--precisions asks for {', '.join(missing)}; on {device} `bench peak` "
                    f"measures {', '.join(peak_keys(device))}. Leave those out."
                )
        fresh = measure_peaks(device, sizes=args.sizes, repeats=args.repeats, keys=keys)
        disturbed = [key for key in fresh.matmul_flops_per_s if fresh.disturbed(key)]
        cached = load_peaks(device) if keys else None
        kept = [k for k in (cached.matmul_flops_per_s if cached else {}) if k not in keys]
        peaks = merge_peaks(cached, fresh)
        saved_to = None if disturbed else save_peaks(peaks)
    if args.json:
        cache = str(path) if saved_to or args.show else None
        print(json.dumps({**asdict(peaks), "cache": cache}, indent=1))
    else:
        print(describe_peaks(peaks, saved_to))
        if kept:  # the entry's one date is the new measurement's; say which rows are older
            print(f"Kept from the cache, measured {cached.measured_at}: {', '.join(kept)}.")
    if disturbed:
        shares = ", ".join(f"{key} {peaks.others_cpu_share[key]:.0%}" for key in disturbed)
        raise MeasurementDisturbedError(
            f"Other processes took more than {MAX_OTHERS_CPU_SHARE:.0%} of this machine's CPU "
            f"time while it was measured ({shares}), so these rates understate its peak and "
            f"were not saved to {path} (runs keep what it held). Run `mnistbench bench peak` "
            "again when nothing else is running (see `top`)."
        )
    return 0
