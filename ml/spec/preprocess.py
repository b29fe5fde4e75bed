"""The preprocessing pipeline's steps, each fitted on the training part only.

`PreprocessStep` validates as a discriminated union on ``step``: ``{"step": "pca", "n_components":
0.95}`` becomes a `PcaStep`, an unknown name is refused with the list of allowed ones. Calling
``PreprocessStep(step=..., ...)`` builds the matching step model too, so a plain
``{step: standardize}`` keeps working everywhere it did.

Pydantic only: importing this never imports torch, numpy or scikit-learn.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, GetCoreSchemaHandler, TypeAdapter, model_validator
from pydantic_core import CoreSchema

from ml.spec.base import StrictModel

MAX_COMPONENTS = 4096
MAX_K = 100_000


class PreprocessStep(StrictModel):
    """One step of the preprocessing pipeline (the base of every step model).

    As a field type it accepts any step (discriminated on ``step``); called, it returns the
    concrete step model, e.g. ``PreprocessStep(step="standardize")`` is a `StandardizeStep`.
    """

    # Built lazily: its schema is the union of the subclasses defined below.
    model_config = ConfigDict(defer_build=True)

    step: str = Field(description="The step's name.")

    def __new__(cls, *args: Any, **data: Any) -> Any:
        if cls.__name__ == "PreprocessStep":
            return _STEP_ADAPTER.validate_python(data)
        return super().__new__(cls)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        if cls.__name__ == "PreprocessStep":
            return handler.generate_schema(AnyPreprocessStep)
        return handler(source)


# --- scaling and imputation -------------------------------------------------------------------


class StandardizeStep(PreprocessStep):
    """Zero mean, unit variance per column (the training part's mean and standard deviation)."""

    step: Literal["standardize"] = "standardize"


class MinMaxStep(PreprocessStep):
    """Map the training range onto ``feature_range``."""

    step: Literal["minmax"] = "minmax"
    feature_range: tuple[float, float] = Field(default=(0.0, 1.0), description="(low, high) after scaling.")
    per_feature: bool = Field(
        default=True,
        description="False: one range for all columns (image pixels keep their relative values).",
    )

    @model_validator(mode="after")
    def _ordered(self) -> MinMaxStep:
        low, high = self.feature_range
        if not low < high:
            raise ValueError(f"feature_range must be (low, high) with low < high, got {self.feature_range}")
        return self


class RobustStep(PreprocessStep):
    """Subtract the median and divide by the inter-quartile range (outliers weigh little)."""

    step: Literal["robust"] = "robust"


class ImputeStep(PreprocessStep):
    """Fill missing values (NaN) with a statistic of the training column."""

    step: Literal["impute"] = "impute"
    strategy: Literal["mean", "median", "most_frequent"] = "mean"


# --- feature selection --------------------------------------------------------------------------

SelectScoring = Literal[
    "auto",
    "accuracy",
    "balanced_accuracy",
    "roc_auc",
    "average_precision",
    "f1",
    "r2",
    "neg_mean_squared_error",
    "neg_mean_absolute_error",
]
SelectMethod = Literal["variance", "anova", "mutual_info", "rfe", "sequential", "l1", "tree"]
# Which options each method reads (anything else set is an error, not silently ignored).
_SELECT_OPTIONS: dict[str, set[str]] = {
    "variance": {"threshold"},
    "anova": {"k"},
    "mutual_info": {"k"},
    "rfe": {"k", "cv", "estimator", "scoring"},
    "sequential": {"k", "cv", "estimator", "direction", "scoring"},
    "l1": {"k", "threshold", "alpha"},
    "tree": {"k", "threshold"},
}


class SelectStep(PreprocessStep):
    """Keep a subset of the columns.

    Filter (a criterion, no model): ``variance`` (drop columns whose variance is <= threshold),
    ``anova`` (F-test), ``mutual_info`` (keep the k best). Wrapper (a model is fitted on candidate
    subsets, cross-validated on the training part): ``rfe`` (recursive elimination, RFECV picks
    how many unless k), ``sequential`` (forward/backward search for k columns). Embedded (the
    model's own weights): ``l1`` (non-zero L1 coefficients), ``tree`` (tree importances).
    """

    step: Literal["select"] = "select"
    method: SelectMethod = "anova"
    k: int | None = Field(
        default=None,
        ge=1,
        le=MAX_K,
        description="How many columns to keep (anova, mutual_info: default 10; rfe: the minimum; "
        "sequential: default half; l1, tree: at most this many).",
    )
    threshold: float | None = Field(
        default=None,
        ge=0.0,
        description="variance: the variance to exceed (default 0); l1, tree: the minimum |weight| "
        "or importance (default: sklearn's, 1e-5 for l1 and the mean importance for tree).",
    )
    cv: int = Field(default=3, ge=2, le=10, description="rfe, sequential: folds of the training part.")
    estimator: Literal["linear", "tree"] = Field(
        default="linear",
        description="rfe, sequential: logistic/ridge regression (linear) or a small random forest.",
    )
    direction: Literal["forward", "backward"] = "forward"
    scoring: SelectScoring = Field(
        default="auto",
        description="rfe, sequential: how candidate column sets are scored on the held-out folds. auto: "
        "ROC-AUC for two classes, balanced accuracy for more, R2 for regression (never plain accuracy, "
        "which a majority class fakes).",
    )
    alpha: float = Field(
        default=0.05,
        gt=0.0,
        le=1e4,
        description="l1: penalty strength on the mean loss, as Lasso's alpha (classification: an L1 linear "
        "SVM with C = 1 / (alpha * rows)). Larger keeps fewer columns.",
    )

    @model_validator(mode="after")
    def _options_fit_method(self) -> SelectStep:
        allowed = _SELECT_OPTIONS[self.method]
        for option in ("k", "threshold", "cv", "estimator", "direction", "scoring", "alpha"):
            # Only a value other than the default counts: a stored spec lists every field.
            changed = getattr(self, option) != type(self).model_fields[option].default
            if option in self.model_fields_set and changed and option not in allowed:
                raise ValueError(
                    f"{option} does not apply to method {self.method}; it reads: {', '.join(sorted(allowed))}"
                )
        return self


# --- extraction ---------------------------------------------------------------------------------


class PcaStep(PreprocessStep):
    """Project on the directions of largest training variance (principal components)."""

    step: Literal["pca"] = "pca"
    n_components: Annotated[int, Field(ge=1, le=MAX_COMPONENTS)] | Annotated[float, Field(gt=0.0, lt=1.0)] = Field(
        default=0.95,
        description="A number of components, or a fraction in (0, 1) of the variance to keep.",
    )
    whiten: bool = Field(default=False, description="Scale each component to unit variance.")


class IcaStep(PreprocessStep):
    """Independent component analysis (FastICA): statistically independent sources."""

    step: Literal["ica"] = "ica"
    n_components: int | None = Field(default=None, ge=1, le=MAX_COMPONENTS, description="Default: all columns.")
    max_iter: int = Field(default=400, ge=10, le=10_000)


# --- transformation -----------------------------------------------------------------------------


class PolarStep(PreprocessStep):
    """Replace two columns (x, y) by polar coordinates r and theta (radians, in (-pi, pi])."""

    step: Literal["polar"] = "polar"
    x: str = Field(default="x", min_length=1, description="The column of the first coordinate.")
    y: str = Field(default="y", min_length=1, description="The column of the second coordinate.")
    center: Literal["origin", "mean"] = Field(
        default="origin", description="The pole: the origin, or the training mean of (x, y)."
    )

    @model_validator(mode="after")
    def _two_columns(self) -> PolarStep:
        if self.x == self.y:
            raise ValueError(f"x and y must name two different columns, got {self.x!r} twice")
        return self


class LogStep(PreprocessStep):
    """log(1 + value) of non-negative columns (long right tails become tame)."""

    step: Literal["log"] = "log"
    columns: list[str] = Field(min_length=1, max_length=MAX_K, description="The columns to transform.")


class PolynomialStep(PreprocessStep):
    """Add products of columns up to ``degree`` (x1, x2 -> x1, x2, x1^2, x1 x2, x2^2)."""

    step: Literal["polynomial"] = "polynomial"
    degree: int = Field(default=2, ge=2, le=5)
    interaction_only: bool = Field(default=False, description="Products of distinct columns only.")


# --- class balancing and under-sampling (training part only) -------------------------------------


class BalanceStep(PreprocessStep):
    """Correct a class imbalance in the training part (classification only).

    ``class_weight`` weighs the loss by inverse class frequency; ``random_over`` repeats and
    ``smote`` interpolates minority rows; ``random_under`` drops majority rows; ``tomek`` drops
    majority rows of Tomek links and ``enn`` those their neighbours disagree with (cleaning).
    Validation and test rows are never resampled.
    """

    step: Literal["balance"] = "balance"
    method: Literal["class_weight", "random_over", "smote", "random_under", "tomek", "enn"] = "class_weight"
    ratio: float | None = Field(
        default=None,
        gt=0.0,
        le=1.0,
        description="random_over, smote, random_under (binary): minority/majority count after "
        "resampling; default: equal counts.",
    )
    k_neighbors: int = Field(default=5, ge=1, le=100, description="smote, enn: neighbours considered.")

    @model_validator(mode="after")
    def _ratio_applies(self) -> BalanceStep:
        if self.ratio is not None and self.method not in ("random_over", "smote", "random_under"):
            raise ValueError(f"ratio does not apply to method {self.method}")
        return self


class DeduplicateStep(PreprocessStep):
    """Under-sample near-duplicates of the training part: of rows closer than ``tolerance`` (in
    standardized units) only the first is kept.

    With ``across_splits`` (the default) it also removes the leakage between the parts: the
    validation rows that duplicate a training row and the test rows that duplicate any training
    or validation row are dropped from their part (training keeps its rows), so no score is
    measured on a row the model, its threshold or its early stopping has seen.
    """

    step: Literal["deduplicate"] = "deduplicate"
    tolerance: float = Field(default=1e-3, gt=0.0, le=10.0, description="Euclidean radius, standardized units.")
    same_label: bool = Field(
        default=True, description="Classification: only rows with the same class count as duplicates."
    )
    across_splits: bool = Field(
        default=True,
        description="Also drop validation rows duplicating training rows, and test rows duplicating "
        "training or validation rows.",
    )


# --- augmentation (training batches, on the fly, every epoch) -----------------------------------


class AugmentStep(PreprocessStep):
    """Augment each training batch anew every epoch (tables).

    ``gaussian_noise`` adds N(0, std^2) to every feature. ``mixup`` moves each row towards a
    random partner of its batch, x + (1 - lam)(x_partner - x) with lam ~ Beta(alpha, alpha)
    folded to [0.5, 1]: the new point stays nearer its own row, so it keeps that row's hard label
    (classification); regression targets are mixed with the same lam.
    Acts on the pipeline's final features, whatever its position in the list.
    """

    step: Literal["augment"] = "augment"
    method: Literal["gaussian_noise", "mixup"] = "gaussian_noise"
    std: float = Field(default=0.1, gt=0.0, le=10.0, description="gaussian_noise: standard deviation.")
    alpha: float = Field(default=0.4, gt=0.0, le=100.0, description="mixup: Beta(alpha, alpha) parameter.")
    probability: float = Field(default=1.0, gt=0.0, le=1.0, description="Fraction of the batch's rows changed.")


class ImageAugmentStep(PreprocessStep):
    """Augment image rows of each training batch anew every epoch: colour jitter (brightness,
    contrast, saturation), flips, shifts, rotations, noise.

    Colour jitter draws each image's factors from [1 - x, 1 + x]: brightness scales the distance
    from black (the batch's lowest value: 0 for pixels in [0, 1]), contrast the distance from the
    image's mean grey, saturation (RGB only) each pixel's distance from its own grey; the result
    is clipped to the batch's range of values. Needs image data (e.g. builtin/digits) whose pixel
    columns are all kept by the pipeline.
    """

    step: Literal["image"] = "image"
    flip: bool = Field(default=False, description="Mirror left-right with probability 1/2.")
    shift: int = Field(default=0, ge=0, le=64, description="Shift by up to this many pixels each way.")
    rotate: float = Field(default=0.0, ge=0.0, le=180.0, description="Rotate by up to this many degrees.")
    noise: float = Field(default=0.0, ge=0.0, le=10.0, description="Standard deviation of added pixel noise.")
    brightness: float = Field(default=0.0, ge=0.0, le=1.0, description="Brightness factor in [1 - x, 1 + x].")
    contrast: float = Field(default=0.0, ge=0.0, le=1.0, description="Contrast factor in [1 - x, 1 + x].")
    saturation: float = Field(
        default=0.0, ge=0.0, le=1.0, description="Saturation factor in [1 - x, 1 + x] (RGB images only)."
    )
    probability: float = Field(default=1.0, gt=0.0, le=1.0, description="Fraction of the batch's images changed.")

    @model_validator(mode="after")
    def _does_something(self) -> ImageAugmentStep:
        if not (
            self.flip or self.shift or self.rotate or self.noise or self.brightness or self.contrast or self.saturation
        ):
            raise ValueError(
                "image augmentation needs at least one of flip, shift, rotate, noise, brightness, contrast, saturation"
            )
        return self

    @property
    def color_jitter(self) -> bool:
        """Whether any colour jitter is asked for."""
        return bool(self.brightness or self.contrast or self.saturation)


class CutMixStep(PreprocessStep):
    """CutMix on the training batches of image (or spectrogram) data, anew every epoch: a chosen
    image gets a rectangle cut from a random partner of its batch, of area 1 - lam of the image
    (lam ~ Beta(alpha, alpha), a random centre, clipped at the borders), and its label becomes
    the area-weighted mix of both labels (classification: soft labels; regression: the targets).
    """

    step: Literal["cutmix"] = "cutmix"
    alpha: float = Field(default=1.0, gt=0.0, le=100.0, description="Beta(alpha, alpha) of the kept area.")
    probability: float = Field(default=0.5, gt=0.0, le=1.0, description="Fraction of the batch's images changed.")


class SpecAugmentStep(PreprocessStep):
    """SpecAugment and friends on the spectrogram batches of an audio data set, anew every epoch
    (training batches only): up to ``time_masks`` masks of at most ``time_mask`` of the frames
    and ``freq_masks`` masks of at most ``freq_mask`` of the bands, set to the batch mean; a
    circular time shift of up to ``shift`` of the frames (a random crop of a looped clip); a gain
    of up to +-``gain_db`` dB; Gaussian ``noise`` (dB). Works on any 1 x bands x frames input.
    """

    step: Literal["spec_augment"] = "spec_augment"
    time_masks: int = Field(default=2, ge=0, le=10)
    time_mask: float = Field(default=0.1, ge=0.0, le=0.5, description="Largest time mask, fraction of the frames.")
    freq_masks: int = Field(default=2, ge=0, le=10)
    freq_mask: float = Field(default=0.15, ge=0.0, le=0.5, description="Largest frequency mask, fraction of the bands.")
    shift: float = Field(
        default=0.0, ge=0.0, le=1.0, description="Largest circular time shift, fraction of the frames."
    )
    gain_db: float = Field(default=0.0, ge=0.0, le=40.0, description="Largest gain change, dB (added to log-mel).")
    noise: float = Field(default=0.0, ge=0.0, le=40.0, description="Standard deviation of added noise, dB.")
    probability: float = Field(default=1.0, gt=0.0, le=1.0, description="Fraction of the batch's clips changed.")


STEP_MODELS: tuple[type[PreprocessStep], ...] = (
    StandardizeStep,
    MinMaxStep,
    RobustStep,
    ImputeStep,
    SelectStep,
    PcaStep,
    IcaStep,
    PolarStep,
    LogStep,
    PolynomialStep,
    BalanceStep,
    DeduplicateStep,
    AugmentStep,
    ImageAugmentStep,
    SpecAugmentStep,
    CutMixStep,
)
STEP_NAMES: tuple[str, ...] = tuple(m.model_fields["step"].default for m in STEP_MODELS)

AnyPreprocessStep = Annotated[
    StandardizeStep
    | MinMaxStep
    | RobustStep
    | ImputeStep
    | SelectStep
    | PcaStep
    | IcaStep
    | PolarStep
    | LogStep
    | PolynomialStep
    | BalanceStep
    | DeduplicateStep
    | AugmentStep
    | ImageAugmentStep
    | SpecAugmentStep
    | CutMixStep,
    Field(discriminator="step"),
]
_STEP_ADAPTER: TypeAdapter[Any] = TypeAdapter(AnyPreprocessStep)
