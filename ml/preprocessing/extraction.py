"""Feature extraction: new columns that summarise the old ones (PCA, ICA)."""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.decomposition import PCA, FastICA
from sklearn.exceptions import ConvergenceWarning

from ml.errors import DataError
from ml.preprocessing.base import FittedStep, StepContext, StepFit, rounded
from ml.spec.preprocess import IcaStep, PcaStep


def fit_pca(spec: PcaStep, X: np.ndarray, y: np.ndarray, names: list[str], ctx: StepContext) -> FittedStep:
    """Project on the principal components of the training rows.

    The report gives the explained variance ratio of each component and their total: what the
    projection keeps of the spread of the data (not of what separates the classes).
    """
    n_components = spec.n_components
    if isinstance(n_components, int) and n_components > min(X.shape):
        raise DataError(
            f"pca: n_components={n_components} exceeds min(rows, columns) = {min(X.shape)} of the training part"
        )
    pca = PCA(n_components=n_components, whiten=spec.whiten, random_state=ctx.seed).fit(X)
    ratios = pca.explained_variance_ratio_
    out_names = [f"pc{i + 1}" for i in range(pca.n_components_)]
    report = {
        "components": int(pca.n_components_),
        "from_features": len(names),
        "explained_variance_ratio": rounded(ratios),
        "explained_variance_total": round(float(ratios.sum()), 6),
    }
    return FittedStep(pca, pca.transform(X), y, out_names, report)


def fit_ica(spec: IcaStep, X: np.ndarray, y: np.ndarray, names: list[str], ctx: StepContext) -> FittedStep:
    """Independent components (FastICA) of the training rows."""
    ica = FastICA(n_components=spec.n_components, max_iter=spec.max_iter, random_state=ctx.seed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        ica.fit(X)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    n = int(ica.components_.shape[0])
    report = {"components": n, "from_features": len(names), "iterations": int(ica.n_iter_), "converged": converged}
    return FittedStep(ica, ica.transform(X), y, [f"ic{i + 1}" for i in range(n)], report)


EXTRACTION_STEPS: dict[str, StepFit] = {"pca": fit_pca, "ica": fit_ica}
