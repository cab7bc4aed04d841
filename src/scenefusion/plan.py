"""One resolved plan between a config and the work: every id becomes the object it names, once.

``resolve_plan(config, dataset)`` runs after the data are loaded (``auto`` needs them) and before
anything expensive. Extraction takes the plan's :class:`FeatureRecipe`, the grid its
:class:`GridPlan` (classifiers with their hyper-parameters, combiner prototypes with their
settings), bundles and reports its resolved config; no later stage reads the config or parses
an id again. Ids stay for display, saved configs and files.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .config import ExperimentConfig
from .data import Dataset
from .data.video_folder import VideoOptions
from .features.audio.auto import context_seconds, resolve_audio_feature
from .features.recipe import FeatureRecipe
from .models import capabilities, make_model
from .models.combiners import Combiner, resolve_combiner
from .models.early import EARLY_AUDIO, EarlyAudioSide


@dataclass(frozen=True)
class ModelChoice:
    """A classifier of the grid: its id (shown in row names) and how to build a fresh one
    with the config's hyper-parameters, tuning switch and the run's seed."""

    id: str
    params: Mapping[str, Any]
    tune: bool
    seed: int

    def fresh(self) -> Any:
        model = make_model(self.id, **self.params)
        if self.tune and capabilities(model).tunable:
            model.set_params(tune=True)
        if "random_state" in model.get_params() and "random_state" not in self.params:
            model.set_params(random_state=self.seed)
        return model


@dataclass(frozen=True)
class CombinerChoice:
    """A late or hybrid combiner of the grid: its id (shown in row names) and an unfitted
    prototype carrying its settings (``fusion.params``), cloned for every fit."""

    id: str
    prototype: Combiner


@dataclass(frozen=True)
class GridPlan:
    """The rows of the comparison grid and the rules that choose among them."""

    backbones: tuple[str, ...]
    audio_id: str | None
    image_models: tuple[ModelChoice, ...]
    audio_models: tuple[ModelChoice, ...]
    early_models: tuple[ModelChoice, ...]
    early_audio: tuple[EarlyAudioSide, ...]
    early_pca_image: int | None
    late: tuple[CombinerChoice, ...]
    hybrid: tuple[CombinerChoice, ...]
    #: what chooses models, best/ and calibration: ``auto`` | ``val`` | ``cv``
    select_on: str
    #: where learning combiners learn: ``auto`` | ``val`` | ``oof``
    combiner_on: str
    seed: int


@dataclass(frozen=True)
class RunPlan:
    """Everything a run does, resolved: the extractors, how videos are cut, the grid, and
    the notes the resolution implies (which feature ``auto`` chose, and its licence)."""

    #: the config as run: ``features.audio: auto`` replaced by what auto chose
    config: ExperimentConfig
    features: FeatureRecipe
    #: how videos were cut when the data were loaded (as the config said, before ``auto``)
    video: VideoOptions
    grid: GridPlan
    notes: tuple[str, ...] = ()


def video_options(config: ExperimentConfig) -> VideoOptions:
    """How a video folder is cut for this run: the data section's steps and span, and as much
    sound per item as the audio feature reads (``ID@Ns``: N s; ``auto``: its longest).
    Needed before loading (cutting is part of loading), hence apart from the plan."""
    return VideoOptions(fps=config.data.video_fps, max_seconds=config.data.video_max_seconds,
                        audio_seconds=context_seconds(config.features.audio),
                        cache_dir=config.features.cache_dir)


def resolve_plan(config: ExperimentConfig, dataset: Dataset) -> RunPlan:
    """The plan of running ``config`` on ``dataset`` (loaded with :func:`video_options`)."""
    notes: list[str] = []
    video = video_options(config)  # what loading used: before auto's choice replaces it
    audio = None
    if "audio" in dataset.modalities:  # photos only: say nothing of a sound feature
        audio, why = resolve_audio_feature(config.features.audio, dataset)
        if why:
            notes.append(why)
        if audio.id != config.features.audio:
            config = config.model_copy(update={"features": config.features.model_copy(
                update={"audio": audio.id})})
    f = config.features
    recipe = FeatureRecipe(tuple(f.image_backbones), audio, dict(f.image_weights), f.runtime,
                           f.threads or config.threads, f.batch_size, f.precision, f.device)
    return RunPlan(config, recipe.for_modalities(dataset.modalities), video,
                   grid_plan(config, audio.id if audio is not None else None), tuple(notes))


def grid_plan(config: ExperimentConfig, audio_id: str | None) -> GridPlan:
    """The grid's rows with every id resolved (an unknown one failed when the config was
    read; this builds the objects)."""
    m, fusion = config.models, config.fusion

    def choices(ids: list[str]) -> tuple[ModelChoice, ...]:
        return tuple(ModelChoice(i, dict(m.params.get(i, {})), m.tune, config.seed)
                     for i in ids)

    def combiners(ids: list[str]) -> tuple[CombinerChoice, ...]:
        return tuple(CombinerChoice(i, resolve_combiner(i, fusion.params.get(i, {})))
                     for i in ids)

    return GridPlan(
        backbones=tuple(config.features.image_backbones), audio_id=audio_id,
        image_models=choices(m.image), audio_models=choices(m.audio),
        early_models=choices(fusion.early),
        early_audio=tuple(EARLY_AUDIO.get(side) for side in fusion.early_audio),
        early_pca_image=fusion.early_pca_image, late=combiners(fusion.late),
        hybrid=combiners(fusion.hybrid), select_on=m.select_on,
        combiner_on=fusion.combiner_on, seed=config.seed)
