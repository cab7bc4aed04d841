"""Fill the feature cache for a data set here or on a Ray cluster, with one result type.

Front ends (``scenefusion extract``) ask for a runner by name; which function does the work and
how its result is shaped is decided here, so the CLI neither chooses between the two nor
reconciles their results.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..data.items import Dataset, Skip
from ..errors import ScenefusionError
from .recipe import FeatureRecipe
from .store import FeatureStore

RUNNERS = ("local", "ray")
StageProgress = Callable[[str, int, int], None]


class UnknownRunnerError(ScenefusionError, ValueError):
    """A runner name that is neither ``local`` nor ``ray``."""


@dataclass(frozen=True)
class RayConfig:
    """Where and how wide a Ray extraction runs (ignored by the local runner)."""

    address: str | None = None
    actors: int = 1
    gpus_per_actor: float = 0.0


@dataclass
class CacheFill:
    """What filling the cache did: per feature table (``audio:<id>``, ``image:<backbone>``)
    its array shape per item and its computed / reused / skipped counts and seconds; and the
    inputs that could not be read."""

    items: int
    shapes: dict[str, tuple[int, ...]]
    extraction: dict[str, dict[str, float]]
    skipped: list[Skip] = field(default_factory=list)


def fill_cache(
    dataset: Dataset,
    store: FeatureStore,
    recipe: FeatureRecipe,
    *,
    runner: str = "local",
    ray: RayConfig = RayConfig(),
    progress: StageProgress | None = None,
) -> CacheFill:
    """Compute and cache every feature of ``recipe`` for ``dataset`` that is not cached yet, in
    this process (``runner="local"``) or as a Ray Data pipeline (``"ray"``; the recipe's
    ``threads`` are then per actor). Both write the same tables and keys, so either leaves a
    cache the other reuses. ``recipe.device`` is where image backbones run locally; Ray actors
    use a GPU when they reserve one (``ray.gpus_per_actor``)."""
    if runner not in RUNNERS:
        raise UnknownRunnerError(f"unknown runner {runner!r}; choose one of {', '.join(RUNNERS)}")
    if runner == "ray":
        from .distributed import RayOptions, extract_distributed

        done = extract_distributed(
            dataset, store, recipe,
            options=RayOptions(ray.address, ray.actors, recipe.threads, ray.gpus_per_actor,
                               recipe.batch_size),
            progress=progress)
        return CacheFill(done.items, dict(done.shapes), done.extraction, list(done.skipped))
    from .extract import extract_dataset

    out = extract_dataset(dataset, store, recipe, progress=progress)
    audio = recipe.audio_id
    shapes = {**({f"audio:{audio}": tuple(out.audio.shape[1:])} if out.audio is not None else {}),
              **{f"image:{b}": tuple(v.shape[1:]) for b, v in out.images.items()}}
    return CacheFill(len(dataset), shapes, out.extraction, list(out.skipped))
