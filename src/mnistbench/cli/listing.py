"""`mnistbench list`: the models (with parameters and published figures), data sets and
suites. The one verb besides training that imports torch: it builds every model to count it."""

from __future__ import annotations

import argparse


def register(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser("list", help="models, datasets and suites")
    p.set_defaults(handler=cmd_list)


def cmd_list(args: argparse.Namespace) -> int:
    import torch

    from mnistbench.cli.plans import suites_table
    from mnistbench.data import DATASETS
    from mnistbench.engine.measure import count_parameters
    from mnistbench.models import create_model, list_models
    from mnistbench.report import format as fmt
    from mnistbench.report import markdown_table

    rows = []
    for info in list_models():
        try:
            with torch.device("meta"):  # count parameters without allocating weights
                params = count_parameters(create_model(info.name), trainable_only=False)
        except RuntimeError:  # a model that reads tensor values while it is built (snntorch)
            params = count_parameters(create_model(info.name), trainable_only=False)
        published = info.published
        rows.append(
            [
                info.name,
                info.family,
                fmt.count(params),
                fmt.percent(published.test_accuracy) if published else "—",
                f"study {published.study}" if published else "—",
                info.architecture,
            ]
        )
    header = ("Model", "Family", "Params", "Published acc (MNIST)", "Source", "Architecture")
    print("Models\n")
    print(markdown_table(header, rows))
    print("\nDatasets\n")
    datasets = [
        [name, str(len(spec.class_names)), "60,000", "10,000"] for name, spec in DATASETS.items()
    ]
    print(markdown_table(("Dataset", "Classes", "Train", "Test"), datasets))
    print("\nSuites (`mnistbench suite NAME`)\n")
    print(suites_table())
    return 0
