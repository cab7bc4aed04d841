"""Run extractors over a data set via the feature store: compute what is missing, reuse the rest.

Images are decoded and preprocessed by DataLoader workers while the backbone runs, so decoding
overlaps compute. A file that fails here (e.g. corrupt after the data check) is skipped and
reported, never silently replaced.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from ..cpu import thread_budget
from ..data.items import Dataset, Item, Skip
from ..data.validate import DataError, open_image_rgb
from ..errors import InvalidValue
from ..paths import cache_dir_in_use
from . import DEFAULT_BATCH_SIZE
from .audio import AUDIO_FEATURES, AudioFeature
from .image import ImageExtractor
from .recipe import FeatureRecipe
from .store import FeatureStore, FeatureTable, content_hash, not_finite

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


@dataclass
class Extracted:
    """Features for the items that have them (`ok` marks which), plus what a user should know."""

    features: np.ndarray
    ok: np.ndarray
    computed: int = 0
    reused: int = 0
    skipped: list[Skip] = field(default_factory=list)
    seconds: float = 0.0


def item_key(item: Item, path: Path | None) -> str:
    if path is None:
        raise ValueError(f"item {item.id} has no file for this modality")
    return f"{item.id}|{content_hash(path)}"


class _ImageFiles(TorchDataset):
    """Decodes and preprocesses in DataLoader workers; a bad file yields its problem, no crash."""

    def __init__(self, paths: list[Path], preprocess: Callable) -> None:
        self.paths = paths
        self.preprocess = preprocess

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        try:
            return i, self.preprocess(open_image_rgb(self.paths[i])), None
        except DataError as err:
            return i, None, err.problem


class _ChunkWriter:
    """Buffers new features and stores them a chunk at a time, so the store is not flooded with
    one file per item. Used as a context manager: whatever was computed is flushed on the way
    out, also when Ctrl-C or an error ends the run, so a killed run keeps all of its work."""

    def __init__(self, table: FeatureTable, flush_every: int) -> None:
        self.table = table
        self.flush_every = flush_every
        self.keys: list[str] = []
        self.rows: list[np.ndarray] = []

    def add(self, key: str, row: np.ndarray) -> None:
        self.keys.append(key)
        self.rows.append(row)

    def flush(self, force: bool = False) -> None:
        if self.keys and (force or len(self.keys) >= self.flush_every):
            keys, rows = self.keys, self.rows
            self.keys, self.rows = [], []  # a failed write is not retried on the way out
            self.table.put_many(keys, np.stack(rows))

    def __enter__(self) -> _ChunkWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.flush(force=True)


def _collate(batch):
    return batch


def _keys(items: list[Item], attr: str, skipped: list[Skip]) -> list[str | None]:
    keys: list[str | None] = []
    for item in items:
        path = getattr(item, attr)
        try:
            keys.append(item_key(item, path))
        except (OSError, ValueError) as exc:
            skipped.append(Skip(str(path or item.id), f"cannot read file ({exc})"))
            keys.append(None)
    return keys


def _reuse(table: FeatureTable, keys: list[str | None], todo: list[int], features: np.ndarray,
           ok: np.ndarray) -> list[int]:
    """Fill the rows of `todo` that the table holds; the indices still to compute."""
    cached = table.get_many(keys[i] for i in todo)
    missing = []
    for i in todo:
        if keys[i] in cached:
            features[i], ok[i] = cached[keys[i]], True
        else:
            missing.append(i)
    return missing


def _missing(table: FeatureTable, keys: list[str | None], features: np.ndarray,
             ok: np.ndarray) -> list[int]:
    """Reuse what is cached; the indices still to compute (items whose file could not be read
    have no key and are neither)."""
    return _reuse(table, keys, [i for i, k in enumerate(keys) if k is not None], features, ok)


def extract_images(
    items: list[Item],
    extractor: ImageExtractor,
    store: FeatureStore,
    batch_size: int = DEFAULT_BATCH_SIZE,
    num_workers: int | None = None,
    flush_every: int = 256,
    progress: Progress | None = None,
) -> Extracted:
    """(N, D) embeddings for `items`; computed ones are stored in chunks as the run goes. The
    table is locked while its missing items are computed: a concurrent run waits, then reuses."""
    table = store.table(extractor.id, extractor.params_key(), (extractor.dim,))
    batching = _Batching(batch_size, num_workers, flush_every)

    def compute(todo, keys, features, ok, skipped):
        _embed(items, todo, keys, extractor, table, features, ok, skipped, batching, progress)

    return _through_cache(items, "image", table, (extractor.dim,), compute, progress)


Compute = Callable[[list[int], list[str | None], np.ndarray, np.ndarray, list[Skip]], None]


def _through_cache(items: list[Item], attr: str, table: FeatureTable, shape: tuple[int, ...],
                   compute: Compute, progress: Progress | None) -> Extracted:
    """The cache protocol every extractor follows: reuse what is stored; then, holding the
    table's lock, reuse what a concurrent run stored meanwhile and `compute` only the rest
    (which stores rows as it goes). Unreadable files are skipped with their reason."""
    start = time.perf_counter()
    skipped: list[Skip] = []
    keys = _keys(items, attr, skipped)
    features = np.zeros((len(items), *shape), np.float32)
    ok = np.zeros(len(items), bool)
    todo = _missing(table, keys, features, ok)
    reused = int(ok.sum())
    if todo:
        with table.locked():
            todo = _reuse(table, keys, todo, features, ok)  # stored by another run meanwhile
            reused = int(ok.sum())
            if progress:
                progress(len(items) - len(todo), len(items))
            if todo:
                compute(todo, keys, features, ok, skipped)
    elif progress:
        progress(len(items), len(items))
    computed = int(ok.sum()) - reused
    return Extracted(features, ok, computed, reused, skipped, time.perf_counter() - start)


def default_decode_workers() -> int:
    """DataLoader processes that decode images beside the model: two wherever two cores are
    usable. Decoding a 1280x720 frame costs 12 ms (JPEG) to 49 ms (PNG) against 7 ms for
    effnet_lite0's forward pass, so decoding is the bottleneck; measured on 2 cores
    (benchmarks/decode_path.py): PNG 25.2 images/s with 2 workers vs 17.2 with 1, JPEG 44.9
    vs 35.6; vgg19, whose model dominates, is unchanged (4.5-4.7 vs 4.2-4.6). A run's thread
    cap (``threads: 1``) holds here too: one thread means decoding in the main process."""
    cores = thread_budget()
    return min(2, cores) if cores > 1 else 0


@dataclass
class _Batching:
    batch_size: int
    num_workers: int | None
    flush_every: int


def _embed(items: list[Item], todo: list[int], keys: list[str | None], extractor: ImageExtractor,
           table: FeatureTable, features: np.ndarray, ok: np.ndarray, skipped: list[Skip],
           batching: _Batching, progress: Progress | None) -> None:
    """Embed the images of `todo` into `features`, storing each as it is computed."""
    workers = batching.num_workers
    if workers is None:
        workers = default_decode_workers()
    loader = DataLoader(
        _ImageFiles([items[i].image for i in todo], extractor.preprocessor()),
        batch_size=batching.batch_size,
        num_workers=workers, collate_fn=_collate, prefetch_factor=4 if workers else None,
    )
    done = len(items) - len(todo)
    with _ChunkWriter(table, batching.flush_every) as writer:
        for batch in loader:
            good = [(todo[j], t) for j, t, _ in batch if t is not None]
            for j, _, problem in batch:
                if problem is not None:
                    skipped.append(Skip(str(items[todo[j]].image), problem))
            if good:
                emb = extractor.embed(torch.stack([t for _, t in good]))
                for (i, _), row in zip(good, emb, strict=True):
                    if problem := not_finite(row, f"{extractor.id} embedding"):
                        skipped.append(Skip(str(items[i].image), problem))
                        continue
                    features[i], ok[i] = row, True
                    writer.add(keys[i], row)
            writer.flush()
            done += len(batch)
            if progress:
                progress(done, len(items))


def precomputed_audio(items: list[Item], feature: AudioFeature) -> np.ndarray | None:
    """The (N, 8, 13) MFCC rows the reference layout ships when every item has them (None when
    none has): all the audio such a data set holds, so a feature other than 1 s of plain
    ``mfcc`` is refused rather than silently replaced by them. Mixed sets are refused too."""
    precomputed = [it.mfcc is not None for it in items]
    if not any(precomputed):
        return None
    if not all(precomputed):
        raise InvalidValue("mixing precomputed MFCC rows and audio files in one data set")
    if feature.params.clip_seconds != 1:
        raise InvalidValue(f"audio feature {feature.id!r} needs raw audio around each item; "
                         "this data set ships only 1 s of precomputed MFCCs per item")
    if feature.key() != AUDIO_FEATURES.get("mfcc").key() or feature.shape != items[0].mfcc.shape:
        raise InvalidValue(f"audio feature {feature.id!r} cannot be computed here: this data "
                         "set ships only precomputed 8x13 MFCC rows, no audio; use 'mfcc'")
    return np.stack([it.mfcc for it in items]).astype(np.float32)


def extract_audio(
    items: list[Item],
    store: FeatureStore,
    feature: AudioFeature,
    flush_every: int = 256,
    progress: Progress | None = None,
) -> Extracted:
    """(N, T, C) audio feature sequences of ``feature`` (``audio_feature(ID)``). Items with
    precomputed MFCCs (reference layout) use those: they are all the audio that layout
    ships."""
    start = time.perf_counter()
    shipped = precomputed_audio(items, feature)
    if shipped is not None:
        return Extracted(shipped, np.ones(len(items), bool), 0, len(items), [],
                         time.perf_counter() - start)
    table = store.table(feature.id, feature.key(), tuple(feature.shape))

    def compute(todo, keys, features, ok, skipped):
        done = len(items) - len(todo)
        with _ChunkWriter(table, flush_every) as writer, cache_dir_in_use(store.root):
            for i in todo:
                try:
                    values = feature(items[i].audio)
                except DataError as err:
                    skipped.append(Skip(err.path, err.problem))
                else:
                    if problem := not_finite(values, f"{feature.id} feature"):
                        skipped.append(Skip(str(items[i].audio), problem))
                    else:
                        features[i], ok[i] = values, True
                        writer.add(keys[i], features[i])
                writer.flush()
                done += 1
                if progress:
                    progress(done, len(items))

    return _through_cache(items, "audio", table, tuple(feature.shape), compute, progress)


@dataclass
class DatasetFeatures:
    """Features of the usable items of a data set (those every extractor could read)."""

    dataset: Dataset
    #: backbone id -> (N, D); empty for an audio-only data set
    images: dict[str, np.ndarray]
    #: (N, T, C); None for an image-only data set
    audio: np.ndarray | None
    skipped: list[Skip]
    extraction: dict[str, dict[str, float]]
    notes: list[str] = field(default_factory=list)


StageProgress = Callable[[str, int, int], None]


def extract_dataset(dataset: Dataset, store: FeatureStore, recipe: FeatureRecipe,
                    progress: StageProgress | None = None) -> DatasetFeatures:
    """Every extractor of ``recipe`` through the cache (audio first, then each backbone);
    items that any of them cannot read are dropped and reported. ``progress(stage, done,
    total)`` per stage. A one-modality data set (``dataset.modalities``) runs only its
    modality's extractors."""
    def reporter(label: str) -> Progress | None:
        return (lambda d, t: progress(label, d, t)) if progress else None

    recipe = recipe.for_modalities(dataset.modalities)
    results: dict[str, Extracted] = {}
    audio = recipe.audio_id
    if recipe.audio is not None:
        results[f"audio:{audio}"] = extract_audio(dataset.items, store, recipe.audio,
                                                  progress=reporter(f"audio: {audio}"))
    images = {}
    for b in recipe.backbones:
        extractor = ImageExtractor(b, recipe.weights_of(b), runtime=recipe.runtime,
                                   cache_dir=store.root, threads=recipe.threads,
                                   precision=recipe.precision, device=recipe.device)
        images[b] = extract_images(dataset.items, extractor, store,
                                   batch_size=recipe.batch_size,
                                   progress=reporter(f"image: {b}"))
    results.update({f"image:{b}": r for b, r in images.items()})
    ok = np.ones(len(dataset), dtype=bool)
    for res in results.values():
        ok &= res.ok
    keep = np.flatnonzero(ok)
    notes = []
    if len(keep) < len(dataset):
        notes.append(f"{len(dataset) - len(keep)} item(s) had no usable features and were left out")
    extraction = {
        name: {"computed": r.computed, "reused": r.reused, "seconds": r.seconds,
               "skipped": len(r.skipped)}
        for name, r in results.items()
    }
    sounds = results.get(f"audio:{audio}")
    return DatasetFeatures(
        dataset=dataset.subset(keep),
        images={b: r.features[keep] for b, r in images.items()},
        audio=sounds.features[keep] if sounds is not None else None,
        skipped=[s for r in results.values() for s in r.skipped],
        extraction=extraction,
        notes=notes,
    )


__all__ = ["DatasetFeatures", "Extracted", "extract_audio", "extract_dataset", "extract_images",
           "item_key", "precomputed_audio"]
