"""The one schema of `bundle.json`, checked whole when a bundle is loaded.

A bundle's recipe is a file a user can edit, copy from elsewhere or damage. Each field feeds
the model or what a user is told about its answers, so a value of the wrong type or out of
range must stop the load with the field's name (`key: problem`), never reach the code that
uses it and end in a traceback there. Ids (kind, backbone, audio feature) are checked against
the registries, so an edited recipe is refused whichever model the run picked as best.
Unknown keys are kept and ignored: a newer release may add fields an older one does not read.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

from ..features.audio import AudioFeature, audio_feature
from ..features.backbones import IMAGE_BACKBONES
from ..features.quantize import PRECISIONS
from .persistence import class_fingerprint

#: the modalities each single-model kind needs; late and hybrid models take either
NEEDS = {"image": {"image"}, "audio": {"audio"}, "early": {"image", "audio"}}
BUNDLE_KINDS = frozenset({*NEEDS, "late", "hybrid"})

Probability = Annotated[StrictFloat, Field(ge=0.0, le=1.0)]
Count = Annotated[StrictInt, Field(ge=0)]
Text = Annotated[StrictStr, Field(min_length=1)]


class _Part(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow", allow_inf_nan=False)


class TrainedOn(_Part):
    """What the saved model was trained on (told to predict's and serve's users)."""

    data_path: StrictStr | None = None
    layout: StrictStr | None = None
    dataset_fingerprint: StrictStr | None = None
    synthetic: StrictBool = False
    n_items: Count | None = None
    n_groups: Count | None = None
    split: StrictStr | None = None


class CalibrationInfo(_Part):
    """The temperature the run fitted, divided into every prediction's logits."""

    method: Literal["temperature"] = "temperature"
    temperature: Annotated[StrictFloat, Field(gt=0.0)] = 1.0
    fitted_on: StrictStr | None = None
    test_ece_before: Probability | None = None
    test_ece_after: Probability | None = None
    n_items: Count | None = None
    applied: StrictBool = True
    held_out_ece_before: Probability | None = None
    held_out_ece_after: Probability | None = None
    held_out_confidence: Probability | None = None
    held_out_accuracy: Probability | None = None


class BundleInfo(_Part):
    """Every field of bundle.json that scenefusion reads, with its type and range."""

    name: Text
    kind: StrictStr
    classes: list[StrictStr]
    classes_sha256: StrictStr | None = None
    image_backbone: StrictStr | None = None
    image_weights: Text | None = None
    image_precision: StrictStr = "fp32"
    audio_features: Text | None = None
    audio_source: Literal["reference-csv-mfcc", "raw-audio"] | None = None
    audio_licence: StrictStr | None = None
    val_accuracy: Probability | None = None
    test_accuracy: Probability | None = None
    test_accuracy_ci: Annotated[list[Probability], Field(min_length=2, max_length=2)] | None = None
    n_test: Count | None = None
    trained_on: TrainedOn | None = None
    calibration: CalibrationInfo | None = None

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, kind: str) -> str:
        if kind not in BUNDLE_KINDS:
            raise ValueError(f"unknown kind {kind!r}; expected one of {sorted(BUNDLE_KINDS)}")
        return kind

    @field_validator("classes")
    @classmethod
    def _class_names(cls, classes: list[str]) -> list[str]:
        if not classes or not all(classes):
            raise ValueError("must be a non-empty list of class names")
        if len(set(classes)) != len(classes):
            raise ValueError("lists a class name twice")
        return classes

    @field_validator("image_precision")
    @classmethod
    def _known_precision(cls, precision: str) -> str:
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}; expected one of "
                             f"{', '.join(PRECISIONS)}")
        return precision

    @model_validator(mode="after")
    def _consistent(self) -> BundleInfo:
        """Rules between fields: the class fingerprint, and the ids the kind reads (a named
        backbone is checked even where the kind does not use it)."""
        if (self.classes_sha256 is not None
                and self.classes_sha256 != class_fingerprint(self.classes)):
            raise _FieldProblem("classes", "the class names do not match their fingerprint "
                                "(reordered or edited: predictions would be relabelled)")
        if ((self.kind != "audio" or self.image_backbone is not None)
                and self.image_backbone not in IMAGE_BACKBONES.list()):
            raise _FieldProblem("image_backbone",
                                f"unknown image backbone id {self.image_backbone!r}")
        if self.kind != "image":
            try:
                bundle_audio_feature(self.audio_features)
            except ValueError as err:  # an unknown id (UnknownIdError) or a bad ID@Ns suffix
                raise _FieldProblem("audio_features", str(err)) from None
        return self


def bundle_audio_feature(feature_id: str | None) -> AudioFeature:
    """The audio feature a saved model reads (``audio_features`` of its bundle.json; bundles
    from before it was recorded read 1 s of MFCCs): resolved here, when a bundle is loaded."""
    return audio_feature(feature_id or "mfcc")


class _FieldProblem(Exception):
    """A rule between fields broken: which field to name, and the problem."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(problem)
        self.key, self.problem = key, problem


def bundle_problems(info: dict[str, Any]) -> str:
    """Every problem of a bundle.json object as ``key: problem`` joined by "; " ("" when it
    fits the schema)."""
    try:
        BundleInfo.model_validate(info)
    except _FieldProblem as err:
        return f"{err.key}: {err.problem}"
    except ValidationError as exc:
        return "; ".join(_problem(e) for e in exc.errors())
    return ""


def _problem(error: Any) -> str:
    key = ".".join(str(p) for p in error["loc"]) or "(top)"
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] not in ("missing", "value_error"):
        value = error.get("input")
        message += f" (found {type(value).__name__} {_short(value)})"
    return f"{key}: {message}"


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
