"""An experiment, as validated data: YAML in, every field checked, the resolved config echoed in
each run folder so that a result can always be traced back to exactly what produced it."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from .cpu import at_most_cores
from .errors import ScenefusionError
from .features import DEFAULT_BACKBONE, DEFAULT_BATCH_SIZE
from .files import check_folder_name

log = logging.getLogger(__name__)

IMAGE_MODELS = ["logreg", "svm", "rf", "knn", "hgb", "mlp"]
AUDIO_MODELS = ["lstm", "logreg", "svm", "rf", "hgb"]
#: the late combiners a run compares by default (every registered one is accepted): on real
#: sounds paired with real photos (benchmarks/README.md) mean and weighted fell more than a
#: point below the image model alone in 6 and 3 of 15 grouped splits, these in 1-2
LATE_METHODS = ["product", "stacking", "shrunk"]


#: image backbone runtimes (features.runtime, --runtime)
RUNTIMES = ("auto", "onnx", "torch")
#: numpy's random generators take seeds below 2**32.
MAX_SEED = 2**32 - 1


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataConfig(_Strict):
    path: Path | None = Field(None, description="Data folder or manifest CSV; None = demo data.")
    layout: str = Field("auto", description="Data layout id (see `scenefusion list`); auto: "
                        "found from what is on disk.")
    classes: list[str] | None = Field(
        None, description="Classes to keep (others are skipped); None = all.")
    allow_outside_paths: bool = Field(
        False, description="Accept manifest paths that leave the manifest's folder.")
    check_files: bool = Field(
        False, description="Decode every file before extraction. Off by default: extraction "
        "decodes what it has not cached and skips + reports bad files anyway, so a cached "
        "re-run stays fast.",
    )
    video_fps: float = Field(1.0, gt=0, le=30, description="A video folder's items per second "
                             "of video (1: the reference data set's frame and second of sound).")
    video_max_seconds: float | None = Field(None, gt=0, description="Read at most this many "
                                            "seconds of each video (None: all of it).")


    @field_validator("layout")
    @classmethod
    def _known_layout(cls, value: str) -> str:
        from .data.layouts import check_layout

        return check_layout(value)  # raises, naming the registered layouts

    @field_validator("classes")
    @classmethod
    def _some_classes(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not value:
            raise ValueError("the class list is empty: name at least 2 classes, or leave it "
                             "out to use every class found")
        return value


class SplitConfig(_Strict):
    strategy: Literal["group", "frame"] = "group"
    test_fraction: float = Field(0.25, gt=0, lt=1)
    val_fraction: float = Field(0.15, ge=0, lt=1)
    seed: int = Field(0, ge=0, le=MAX_SEED)


class FeaturesConfig(_Strict):
    image_backbones: list[str] = [DEFAULT_BACKBONE]
    image_weights: dict[str, Path] = {}
    audio: str = Field("auto", description="Audio feature id (see `scenefusion list`); auto: "
                       "the reference layout's MFCC rows; for raw audio, pretrained embeddings "
                       "over the whole clip (up to 4 s): aisfx_birdnet with the [birdnet] extra "
                       "(non-commercial licence), else aisfx, else MFCCs.")
    # fastest on 2 cores with ONNX Runtime (benchmarks/README.md)
    batch_size: int = Field(DEFAULT_BATCH_SIZE, ge=1, le=4096)
    runtime: Literal["auto", "onnx", "torch"] = Field(
        "auto", description="Backbone runtime: ONNX Runtime (auto, when installed) or torch."
    )
    threads: int | None = Field(
        None, ge=1, description="Threads for embedding images; None = the run's `threads` "
        "(more than the usable cores are capped to those, with a note).",
    )

    @field_validator("threads")
    @classmethod
    def _cap_threads(cls, value: int | None) -> int | None:
        return at_most_cores(value)

    @field_validator("runtime", mode="before")
    @classmethod
    def _known_runtime(cls, value: Any) -> Any:
        if isinstance(value, str) and value not in RUNTIMES:
            raise ValueError(f"unknown runtime {value!r}; choose one of {', '.join(RUNTIMES)}")
        return value
    precision: Literal["fp32", "int8", "bf16"] = Field(
        "fp32", description="Embedding precision: int8 (ONNX Runtime static quantisation) or "
        "bf16 (torch, CPUs with AVX-512-BF16/AMX); fidelity in benchmarks/README.md.")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="Where image backbones run: a CUDA GPU when the runtime can use "
        "one (auto), or cpu / cuda (an error when there is none).")
    cache_dir: Path | None = None

    @model_validator(mode="before")
    @classmethod
    def _engine_is_runtime(cls, data: Any) -> Any:
        """`engine` was this setting's name before 0.2; accepted with a warning."""
        if isinstance(data, dict) and "engine" in data:
            data = dict(data)
            if "runtime" in data:
                raise ValueError("give features.runtime only (engine is its old name)")
            warnings.warn("features.engine is deprecated: use features.runtime",
                          DeprecationWarning, stacklevel=2)
            log.warning("config: features.engine is deprecated, read as features.runtime")
            data["runtime"] = data.pop("engine")
        return data

    @field_validator("image_backbones")
    @classmethod
    def _known_backbones(cls, value: list[str]) -> list[str]:
        from .features.backbones import IMAGE_BACKBONES

        if not value:
            raise ValueError("at least one image backbone is needed")
        for v in value:
            IMAGE_BACKBONES.get(v)  # raises, naming the valid ids
        return value

    @field_validator("audio")
    @classmethod
    def _known_audio(cls, value: str) -> str:
        from .features.audio.auto import check_audio_id

        return check_audio_id(value)  # raises, naming what auto and the ids accept


class ModelsConfig(_Strict):
    # at least one per modality: fusion combines the best image and the best audio model
    image: list[str] = Field(IMAGE_MODELS, min_length=1)
    audio: list[str] = Field(AUDIO_MODELS, min_length=1)
    params: dict[str, dict] = Field(
        default_factory=dict, description="Per model id keyword arguments, e.g. {svm: {C: 10}}."
    )
    tune: bool = Field(False, description="Small grid search for classical models (on the val "
                       "set, or by grouped cross-validation where selection uses it).")
    select_on: Literal["auto", "val", "cv"] = Field(
        "auto", description="What chooses models, tuned hyper-parameters, best/ and the "
        "calibration temperature: the validation split, grouped cross-validation over the "
        "training groups, or auto (val when it holds >= 5 held-out groups of every class).")

    @field_validator("params")
    @classmethod
    def _valid_params(cls, value: dict[str, dict]) -> dict[str, dict]:
        """Unknown model ids, unknown hyper-parameters and values outside each estimator's
        declared constraints fail when the config is read, not after extraction."""
        from .models import make_model
        from .models.base import check_hyper_parameters

        for m, params in value.items():
            try:
                check_hyper_parameters(make_model(m, **params))
            except ValueError as err:
                raise ValueError(f"{m}: {err}") from None
        return value


class FusionConfig(_Strict):
    early: list[str] = ["logreg", "mlp"]
    early_audio: list[str] = Field(
        ["pooled", "lstm"],
        description="Audio side of early fusion: pooled statistics of the audio sequence "
        "and/or the trained audio LSTM's embedding (needs 'lstm' among models.audio).",
    )
    late: list[str] = Field(LATE_METHODS, description="Late combiners to compare (ids in "
                            "`scenefusion list`, models.combiners).")
    hybrid: list[str] = Field(["stacking"], description="Combiners of hybrid fusion.")
    params: dict[str, dict] = Field(
        default_factory=dict, description="Per combiner id settings, e.g. {stacking: "
        "{meta_C: 0.5}} (each combiner's settings in `scenefusion list`, models.combiners).")
    combiner_on: Literal["auto", "val", "oof"] = Field(
        "auto", description="Where weighted/stacking combiners learn: validation predictions, "
        "out-of-fold predictions over training groups, or auto (val when it holds >= 5 "
        "held-out groups of every class).")
    early_pca_image: int | None = Field(
        None, ge=1, le=4096, description="PCA components on the image side before "
        "concatenation (at most the embedding size).")

    @field_validator("early_audio")
    @classmethod
    def _known_sides(cls, value: list[str]) -> list[str]:
        from .models.early import EARLY_AUDIO

        for v in value:
            EARLY_AUDIO.get(v)  # raises, naming the valid ones
        return value

    @field_validator("late", "hybrid")
    @classmethod
    def _known_combiners(cls, value: list[str]) -> list[str]:
        from .models.combiners import COMBINERS

        for v in value:
            COMBINERS.get(v)  # raises, naming the registered ones
        return value

    @field_validator("params")
    @classmethod
    def _valid_settings(cls, value: dict[str, dict]) -> dict[str, dict]:
        """Unknown combiners, unknown settings and bad values fail when the config is read,
        naming the valid ones."""
        from .models.combiners import resolve_combiner

        for c, settings in value.items():
            resolve_combiner(c, settings)  # raises, naming the combiner and its settings
        return value


class EvaluationConfig(_Strict):
    n_bootstrap: int = Field(1000, ge=0, le=100_000, description="Bootstrap resamples for "
                             "the confidence intervals (0: none).")
    explain_errors: int = Field(4, ge=0, le=50, description="Saliency maps of the best "
                                "image-only model's most confident test errors in the report "
                                "(0: none).")


class OutputConfig(_Strict):
    runs_dir: Path = Path("runs")
    name: str | None = Field(None, description="Run folder name inside runs_dir (one folder "
                             "name); None = the start time.")

    @field_validator("name")
    @classmethod
    def _one_folder(cls, value: str | None) -> str | None:
        return None if value is None else check_folder_name(value, "run name")


class RunnerConfig(_Strict):
    kind: Literal["local", "ray"] = Field(
        "local", description="local: independent fits in worker processes on this machine, "
        "one per core (runner.workers); ray: independent fits as Ray tasks "
        "(pip install -e '.[ray]').")
    address: str | None = Field(
        None, description="Ray cluster to join (e.g. ray://head:10001 or auto); None starts "
        "a local one.")
    num_cpus: int | None = Field(None, ge=1, le=65_536,
                                 description="CPUs of a local Ray cluster.")
    workers: int | None = Field(
        None, ge=1, le=256, description="local: worker processes for independent fits, one "
        "thread each (None: the run's threads; 1: one fit after another in this process, "
        "with per-epoch progress).")

    @field_validator("workers")
    @classmethod
    def _cap_workers(cls, value: int | None) -> int | None:
        return at_most_cores(value)


class ExperimentConfig(_Strict):
    data: DataConfig = DataConfig()
    split: SplitConfig = SplitConfig()
    features: FeaturesConfig = FeaturesConfig()
    models: ModelsConfig = ModelsConfig()
    fusion: FusionConfig = FusionConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    output: OutputConfig = OutputConfig()
    runner: RunnerConfig = RunnerConfig()
    seed: int = Field(0, ge=0, le=MAX_SEED)
    threads: int | None = Field(
        None, ge=1, description="CPU threads for every stage (torch, ONNX Runtime, BLAS, "
        "OpenMP); None = the cores this process may use (more are capped to those, with a "
        "note). Lower it on a shared machine.",
    )

    @field_validator("threads")
    @classmethod
    def _cap_threads(cls, value: int | None) -> int | None:
        return at_most_cores(value)

    @field_validator("models")
    @classmethod
    def _known_models(cls, value: ModelsConfig) -> ModelsConfig:
        from .models import MODELS, available_models, capabilities

        valid = available_models()
        for side in ("image", "audio"):
            for m in getattr(value, side):
                if m not in valid:
                    raise ValueError(f"unknown {side} model {m!r}; choose from {valid}")
                if side not in capabilities(MODELS.get(m)).modalities:
                    takes = [k for k in valid if side in capabilities(MODELS.get(k)).modalities]
                    raise ValueError(f"model {m!r} does not take {side} input; "
                                     f"{side} models: {takes}")
        return value

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


class ConfigError(ScenefusionError, ValueError):
    """A config file that cannot be used; the message says which file and which field."""


def _problems(exc: ValidationError) -> str:
    """Every validation problem as `dotted.path: message`, joined on one line."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg'].removeprefix('Value error, ')}"
        for e in exc.errors()
    )


def load_config(path: Path | None) -> ExperimentConfig:
    """Read and validate a YAML config; None gives the default comparison grid."""
    if path is None:
        return ExperimentConfig()
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    try:
        config = ExperimentConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {_problems(exc)}") from None
    if config.data.path is not None and not config.data.path.is_absolute():
        config.data.path = (path.parent / config.data.path).resolve()
    return config


def with_overrides(config: ExperimentConfig, **overrides: object) -> ExperimentConfig:
    """A validated copy of `config` with dotted-path overrides from the command line, e.g.
    `{"data.path": p, "features.image_backbones": ["vgg19"]}`; None values are ignored."""
    raw = config.model_dump()
    for dotted, value in overrides.items():
        if value is None:
            continue
        *parents, leaf = dotted.split(".")
        node = raw
        for key in parents:
            node = node[key]
        node[leaf] = value
    try:
        return ExperimentConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"command-line option: {_problems(exc)}") from None
