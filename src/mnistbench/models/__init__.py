"""Model families. Importing this package registers every model; each family is imported here
explicitly so the registry's contents never depend on import order elsewhere."""

from mnistbench.models import (  # noqa: F401  (registration side effect)
    cnn,
    dbn,
    diet,
    gan,
    mlp,
    resnet,
    rnn,
    simsiam,
    small_cnn,
    snn,
    speedrun,
    svm,
    unet,
    vae,
    vit,
)
from mnistbench.models.registry import (
    ModelInfo,
    Published,
    create_model,
    get_model_info,
    list_models,
    register_model,
)

__all__ = [
    "ModelInfo",
    "Published",
    "create_model",
    "get_model_info",
    "list_models",
    "register_model",
]
