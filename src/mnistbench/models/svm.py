"""Support-vector machines on raw pixels: study C's scikit-learn SVC baselines.

`svm_rbf` and `svm_poly`: SVC(kernel, gamma='scale', C=1, degree=3, max_iter=1000) on flattened
[0, 1] pixels of 10,000 training images, a random 10,000 per seed (`--model-option
fit_sample=first`: the first 10,000); the iteration cap is why they stop at 95-96% (Cortes &
Vapnik 1995; libsvm's SMO solver). Published: MNIST rbf 96.35% / poly 95.40%, Fashion-MNIST
rbf 85.67% / poly 80.67%, fit ~7.6 s. Fitted by the `sklearn_fit` stage
(recipes/sklearn_stage.py), not by gradient descent; all 60,000 images: `--model-option
fit_size=0 --val-size 0`.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.svm import SVC
from torch import nn

from mnistbench.engine.memory import chunk_rows
from mnistbench.errors import ConfigError
from mnistbench.models.registry import register_model
from mnistbench.recipes import Recipe, sklearn_fit


class SVCHead(nn.Module):
    """A scikit-learn SVC as a model head: features in, one score per class out.

    libsvm fits it; prediction runs here in torch, float64 as libsvm computes, with the same
    one-vs-one votes: the kernel against every support vector is one matrix product instead of
    libsvm's row-by-row loop. The product runs in chunks of rows sized to the free memory (a
    whole 60,000-image split against ~15,000 support vectors would be 7 GB per float64 kernel
    matrix; the full Fashion-MNIST fit of results/svm-full-fashion-cpu.jsonl, 18,802 support
    vectors, peaked at 2.1 GB). tests/test_svm.py checks that the decision values equal
    sklearn's. Holds no torch parameters.
    """

    def __init__(self, estimator: SVC, in_features: int, out_features: int):
        super().__init__()
        self.estimator = estimator
        self.in_features = in_features
        self.out_features = out_features
        # Filled from the fitted estimator by `load_fitted` (buffers: they follow .to(device)).
        self.register_buffer("support_vectors", None, persistent=False)
        self.register_buffer("pair_coef", None, persistent=False)  # (pairs, n_SV)
        self.register_buffer("intercept", None, persistent=False)  # (pairs,)
        self.pairs: list[tuple[int, int]] = []  # (i, j), i < j, in libsvm's order
        self.classes: np.ndarray = np.arange(out_features)  # the fitted classes, sorted
        self.kernel_name, self.gamma, self.coef0, self.degree = estimator.kernel, 0.0, 0.0, 3
        self._arrays: dict[str, np.ndarray] = {}

    def load_fitted(self, device: torch.device | str = "cpu") -> None:
        """Copy the fitted SVC's support vectors and one-vs-one coefficients into tensors on
        `device` (where the data lives: prediction runs there, on a GPU too)."""
        est = self.estimator
        self.load_arrays(
            {
                "support_vectors": est.support_vectors_,
                "dual_coef": est.dual_coef_,
                "intercept": est.intercept_,
                "n_support": est.n_support_,
                "classes": est.classes_,
                "kernel": np.array(est.kernel),
                "gamma": np.array(float(est._gamma)),  # gamma='scale' resolved by the fit
                "coef0": np.array(float(est.coef0)),
                "degree": np.array(int(est.degree)),
            },
            device,
        )

    def fitted_arrays(self) -> dict[str, np.ndarray]:
        """Everything prediction needs, as plain arrays (numbers and one unicode string), so
        kept weights load with np.load(allow_pickle=False): libsvm's support vectors, dual
        coefficients, intercepts, support counts per class, classes and kernel parameters."""
        self._check_fitted()
        return dict(self._arrays)

    def load_arrays(
        self, arrays: dict[str, np.ndarray], device: torch.device | str = "cpu"
    ) -> None:
        """Prediction state from `fitted_arrays` (a fit, or kept weights read back)."""
        n_support = np.asarray(arrays["n_support"], dtype=np.int64)
        classes = np.asarray(arrays["classes"])
        dual_coef = np.asarray(arrays["dual_coef"], dtype=np.float64)
        support_vectors = np.asarray(arrays["support_vectors"], dtype=np.float64)
        n = len(classes)
        start = np.concatenate([[0], np.cumsum(n_support)])  # SVs are grouped by class
        self.pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
        coef = np.zeros((len(self.pairs), support_vectors.shape[0]))
        for p, (i, j) in enumerate(self.pairs):
            # libsvm: the (i, j) machine weighs class i's SVs by row j-1, class j's by row i
            coef[p, start[i] : start[i + 1]] = dual_coef[j - 1, start[i] : start[i + 1]]
            coef[p, start[j] : start[j + 1]] = dual_coef[i, start[j] : start[j + 1]]

        def as_tensor(array: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(array, dtype=torch.float64, device=device)

        self.support_vectors = as_tensor(support_vectors)  # (n_SV, D)
        self.pair_coef = as_tensor(coef)
        self.intercept = as_tensor(np.asarray(arrays["intercept"], dtype=np.float64))
        self.classes = classes
        self.kernel_name = str(arrays["kernel"])
        self.gamma, self.coef0 = float(arrays["gamma"]), float(arrays["coef0"])
        self.degree = int(arrays["degree"])
        self._arrays = {
            "support_vectors": support_vectors,
            "dual_coef": dual_coef,
            "intercept": np.asarray(arrays["intercept"], dtype=np.float64),
            "n_support": n_support,
            "classes": classes,
            **{k: np.asarray(arrays[k]) for k in ("kernel", "gamma", "coef0", "degree")},
        }

    @property
    def fitted(self) -> bool:
        return self.support_vectors is not None

    def _check_fitted(self) -> None:
        if not self.fitted:
            raise RuntimeError(
                "This scikit-learn model has not been fitted yet; it is trained by the "
                "'sklearn_fit' stage (mnistbench run), or by calling fit_estimator()."
            )

    def _kernel(self, x: torch.Tensor) -> torch.Tensor:
        sv, gamma = self.support_vectors, self.gamma  # gamma: 'scale' resolved, 1 / (D * Var(X))
        kernel = x @ sv.T  # (B, D) @ (D, n_SV) -> (B, n_SV); every step below is in place
        if self.kernel_name == "rbf":
            # |x|^2 - 2 x.sv + |sv|^2, in the order libsvm's result is checked against
            kernel.mul_(-2).add_(x.square().sum(1, keepdim=True)).add_(sv.square().sum(1))
            return kernel.clamp_min_(0).mul_(-gamma).exp_()
        if self.kernel_name == "poly":
            return kernel.mul_(gamma).add_(self.coef0).pow_(self.degree)
        if self.kernel_name == "linear":
            return kernel
        if self.kernel_name == "sigmoid":
            return kernel.mul_(gamma).add_(self.coef0).tanh_()
        raise ValueError(f"unsupported SVC kernel {self.kernel_name!r}")

    def bytes_per_row(self, in_features: int) -> int:
        """Working memory of one input row in `pair_decisions`: its float64 copy, one kernel
        row and a few per-pair rows (decisions, votes, confidences), all float64."""
        return 8 * (in_features + self.support_vectors.shape[0] + 8 * len(self.pairs))

    def pair_decisions(self, features: torch.Tensor) -> torch.Tensor:
        """libsvm's one-vs-one decision values: (B, D) -> (B, pairs); > 0 votes for class i."""
        self._check_fitted()
        rows = chunk_rows(
            self.bytes_per_row(features.shape[1]),
            features.shape[0],
            device=features.device,
            what=f"SVM prediction against {self.support_vectors.shape[0]:,} support vectors",
        )
        return torch.cat(
            [
                self._kernel(chunk.to(torch.float64)) @ self.pair_coef.T + self.intercept
                for chunk in features.split(rows)  # (b, n_SV) @ (n_SV, pairs) per chunk
            ]
        )

    def _scatter_pairs(self, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-pair values (B, pairs) -> added to class i (B, C) and to class j (B, C)."""
        b, c = values.shape[0], len(self.classes)
        first = torch.tensor([i for i, _ in self.pairs], device=values.device).expand(b, -1)
        second = torch.tensor([j for _, j in self.pairs], device=values.device).expand(b, -1)
        to_first = values.new_zeros(b, c).scatter_add_(1, first, values)
        to_second = values.new_zeros(b, c).scatter_add_(1, second, values)
        return to_first, to_second

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """sklearn's one-vs-rest scores (decision_function): votes + squashed confidences."""
        dec = self.pair_decisions(features)
        wins_i = (dec >= 0).to(dec.dtype)
        to_i, to_j = self._scatter_pairs(torch.cat([wins_i, 1 - wins_i, dec]))
        b = dec.shape[0]
        votes = to_i[:b] + to_j[b : 2 * b]
        confidence = to_i[2 * b :] - to_j[2 * b :]
        scores = votes + confidence / (3 * (confidence.abs() + 1))  # (-1/3, 1/3) breaks ties
        return scores.float()

    def predict(self, features: torch.Tensor) -> torch.Tensor:
        """Class indices by libsvm's rule: one vote per pair (> 0 for i), first maximum wins."""
        dec = self.pair_decisions(features)
        wins_i = (dec > 0).to(dec.dtype)
        to_i, to_j = self._scatter_pairs(torch.cat([wins_i, 1 - wins_i]))
        votes = to_i[: dec.shape[0]] + to_j[dec.shape[0] :]
        classes = torch.as_tensor(self.classes, device=dec.device)
        return classes[votes.argmax(dim=1)]  # argmax returns the first of equal maxima


class PixelSVM(nn.Module):
    """SVC on flattened pixels: `forward_features` flattens, `head` is the fitted SVC."""

    def __init__(self, estimator: SVC, num_classes: int = 10, num_pixels: int = 28 * 28):
        super().__init__()
        self.num_classes = num_classes
        self.num_features = num_pixels
        self.head = SVCHead(estimator, num_pixels, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)  # (B, 1, H, W) -> (B, H*W)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))

    def fit_estimator(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        """Fit the SVC on (N, 1, H, W) images and (N,) labels."""
        features = self.forward_features(images)
        if features.shape[1] != self.num_features:
            # Resized inputs (--image-size) change the feature width; follow them.
            self.num_features = self.head.in_features = features.shape[1]
        classes = int(labels.max().item()) + 1
        if classes > self.num_classes:
            raise ValueError(f"labels go up to {classes - 1}, but num_classes={self.num_classes}")
        with warnings.catch_warnings():
            # max_iter=1000 stops the solver early on purpose (study C); n_iter_ records it.
            warnings.filterwarnings("ignore", category=ConvergenceWarning)
            self.head.estimator.fit(
                features.detach().to("cpu", torch.float64).numpy(), labels.cpu().numpy()
            )
        self.head.load_fitted(images.device)

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        return self.head.predict(self.forward_features(images))

    def fitted_counts(self) -> dict[str, int] | None:
        """What the fitted decision function stores, for the run's params and size (None
        before the fit). Parameters = support vectors x features + dual coefficients
        ((classes - 1) x support vectors) + intercepts (one per pair of classes); bytes = those
        values as the float64 arrays sklearn keeps (support_vectors_, dual_coef_, intercept_)."""
        est = self.head.estimator
        if not hasattr(est, "support_vectors_"):
            return None
        arrays = (est.support_vectors_, est.dual_coef_, est.intercept_)
        values = sum(int(a.size) for a in arrays)
        stored = {"model_size_bytes": sum(int(a.nbytes) for a in arrays)}
        return {"params": values, "params_total": values, **stored}

    def fit_summary(self) -> dict[str, object]:
        """Figures of the fitted SVC for the run's metrics."""
        est = self.head.estimator
        return {
            "support_vectors": int(est.support_.shape[0]),  # what prediction time scales with
            # libsvm's iterations of the slowest of the one-vs-one machines; = max_iter means
            # the cap stopped it before convergence (as in study C)
            "solver_iterations": int(np.max(est.n_iter_)),
        }


def _svc(kernel: str, C: float, max_iter: int, gamma: str | float) -> SVC:
    # random_state: libsvm shuffles only for probability estimates (off here); set anyway so a
    # run is reproducible if someone turns them on.
    svc = SVC(kernel=kernel, C=C, gamma=gamma, degree=3, max_iter=max_iter, random_state=0)
    try:
        # sklearn checks its parameters only in fit(), after the run's row exists; its own
        # check, run now, turns a bad option into a ConfigError before any row
        svc._validate_params()
    except (ValueError, TypeError) as error:  # sklearn's InvalidParameterError is both
        raise ConfigError(
            f"Invalid model option for the {kernel} SVM: {str(error).rstrip('.')}. Give "
            "values in range, e.g. --model-option C=10 --model-option max_iter=-1 (no cap) "
            "--model-option gamma=scale."
        ) from None
    return svc


_SVM_REGISTRATION = {
    "family": "svm",
    # fitted once on 10,000 training images, as study C: the stage draws them (fit_size,
    # fit_sample) from the whole training split; runs recorded before fit the first 10,000
    # of a seed-dependent 55,000 (subset 10,000), 91% shared between seeds
    "recipe": Recipe(stages=(sklearn_fit(),), defaults={"epochs": 1}),
    "tags": ("sklearn", "no_autograd"),
    "input_scaling": "unit",  # study C fed flattened pixels in [0, 1]
}


@register_model(
    architecture="SVC, RBF kernel, gamma='scale', C=1, max_iter=1000, flattened [0,1] pixels",
    **_SVM_REGISTRATION,
)
def svm_rbf(
    num_classes: int = 10, C: float = 1.0, max_iter: int = 1000, gamma: str | float = "scale"
) -> PixelSVM:
    return PixelSVM(_svc("rbf", C, max_iter, gamma), num_classes)


@register_model(
    architecture="SVC, cubic polynomial kernel, gamma='scale', C=1, max_iter=1000, "
    "flattened [0,1] pixels",
    **_SVM_REGISTRATION,
)
def svm_poly(
    num_classes: int = 10, C: float = 1.0, max_iter: int = 1000, gamma: str | float = "scale"
) -> PixelSVM:
    return PixelSVM(_svc("poly", C, max_iter, gamma), num_classes)
