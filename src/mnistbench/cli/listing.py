"""`mnistbench list`: the models (with parameters and published figures), data sets and
suites. The one verb besides training that imports torch: it builds every model to count it."""

from __future__ import annotations

import argparse


def register(verbs: argparse._SubParsersAction) -> None:
    p = verbs.add_parser(
        "list",
        help="models, datasets and suites",
        description="Every model (family, parameters, the published figure closest to its "
        "recipe on MNIST, architecture), the data sets and the suites. --json prints every model "
        "with all its published figures, per data set and setting, for scripts and reviewers.",
    )
    p.add_argument(
        "--json", action="store_true", help="models as JSON, with every published figure"
    )
    p.set_defaults(handler=cmd_list)


def _parameters(name: str) -> int:
    """Every parameter of `name` as registered. Built on the CPU: all the registered models
    together take under a second to build there, while building on the meta device routes
    their initialisers through torch._refs, whose first call imports torch._dynamo (~2 s)."""
    import torch

    from mnistbench.engine.size import count_parameters
    from mnistbench.models import create_model

    with torch.no_grad():
        return count_parameters(create_model(name), trainable_only=False)


def model_listing() -> list[dict]:
    """Every registered model with what `list --json` prints: family, parameters, recipe and
    every published figure (per data set and setting, as mnistbench.studies holds them)."""
    from mnistbench.models import list_models
    from mnistbench.studies import published_figures

    return [
        {
            "name": info.name,
            "family": info.family,
            "architecture": info.architecture,
            "params": _parameters(info.name),
            # an SVC has no parameters until it is fit (its support vectors are chosen then):
            # 0 here is "not known before the fit", never "a model with no parameters"
            "params_after_fit": any(stage.kind == "sklearn_fit" for stage in info.recipe.stages),
            "source": info.source.card()["kind"],
            "tags": list(info.tags),
            "recipe": dict(info.recipe.defaults),
            "stages": [stage.kind for stage in info.recipe.stages],
            "published": [figure.to_dict() for figure in published_figures(info.name)],
        }
        for info in list_models()
    ]


def _recipe_figure(model: dict) -> dict | None:
    """The MNIST figure closest to the model's recipe (what the table shows)."""
    from mnistbench.studies import closest_figure

    mnist = [f for f in model["published"] if f["dataset"] == "mnist"]
    return closest_figure(mnist, model["recipe"])[0]


def cmd_list(args: argparse.Namespace) -> int:
    import json

    from mnistbench.cli.plans import suites_table
    from mnistbench.data import DATASETS
    from mnistbench.report import format as fmt
    from mnistbench.report import markdown_table

    models = model_listing()
    if args.json:
        print(json.dumps(models, indent=1))
        return 0
    rows = []
    for model in models:
        figure = _recipe_figure(model)
        rows.append(
            [
                model["name"],
                model["family"],
                "after the fit" if model["params_after_fit"] else fmt.count(model["params"]),
                fmt.percent(figure["test_accuracy"]) if figure else "—",
                f"study {figure['study']}" if figure else "—",
                model["architecture"],
            ]
        )
    header = (
        "Model",
        "Family",
        "Params",
        "Published acc (MNIST, recipe)",
        "Source",
        "Architecture",
    )
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
