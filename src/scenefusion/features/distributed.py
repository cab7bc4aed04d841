"""Feature extraction on a Ray cluster (optional extra `[ray]`), into the same feature cache.

Long on purpose: the pipeline's stages (plan, CPU stage, actors, driver-side writes) share one
plan object and its invariants, and are easier to check read together.

A Ray Data pipeline over the data set's item manifest (built from the loaded `Dataset`, so
pairing and skip reasons are those of single-process extraction):

1. a CPU stage (`map_batches` with a function) hashes each file into the cache key that
   `extract_images` / `extract_audio` use (`item_key`), marks keys already cached, and computes
   the audio features (MFCC / log-mel) that are missing;
2. one actor stage per backbone (`map_batches` with a class, an actor pool of N) builds the
   `ImageExtractor` once per actor, with ONNX Runtime / torch threads set to the actor's CPU
   share, and embeds the images still missing;
3. the driver streams the rows back and writes them into the `FeatureStore` in chunks.

A bad file becomes a row with its `DataError` reason, never a failed job. Workers need the data
files at the same paths (shared storage), and the cache folder too if they are to see what is
cached (otherwise they recompute it and the driver keeps the stored copy). Because keys and tables
are those of single-process extraction, `scenefusion run` / `extract` afterwards reuse
everything, and a second distributed run computes nothing.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..data.items import Dataset, Item, Skip
from ..data.validate import DataError, open_image_rgb
from ..errors import InvalidValue
from ..paths import cache_dir_in_use
from ..runners import connect
from . import DEFAULT_BATCH_SIZE
from .audio import AudioFeature
from .extract import item_key, precomputed_audio
from .recipe import FeatureRecipe
from .store import FeatureStore, FeatureTable, not_finite

log = logging.getLogger(__name__)

#: Rows per CPU-stage task: large enough to amortise task overhead, small enough to stream.
ROWS_PER_TASK = 64
#: Logical CPUs one CPU-stage task asks for (it mostly reads files and runs an FFT).
CPU_STAGE_CPUS = 0.5
StageProgress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide to run. `cpus_per_actor` defaults to an equal share of three quarters
    of the cluster's CPUs (the rest is left to the CPU stage); it is also the actor's thread
    count. `gpus_per_actor` reserves GPUs for each actor (used by the torch runtime only)."""

    address: str | None = None
    actors: int = 1
    cpus_per_actor: float | None = None
    gpus_per_actor: float = 0.0
    batch_size: int = DEFAULT_BATCH_SIZE
    flush_every: int = 256


@dataclass
class DistributedExtraction:
    """What a distributed run did, per feature table (same fields as `extract_dataset`'s
    `extraction`), plus the skipped inputs and Ray's start-up time (0 when already connected)."""

    items: int
    extraction: dict[str, dict[str, float]]
    shapes: dict[str, tuple[int, ...]]
    skipped: list[Skip] = field(default_factory=list)
    seconds: float = 0.0
    startup_seconds: float = 0.0


@dataclass(frozen=True)
class _ImageJob:
    """Everything an actor needs to rebuild the driver's extractor (and prove it did)."""

    column: int
    backbone: str
    weights: Path | None
    runtime: str
    precision: str
    cache_dir: Path
    params_key: str
    dim: int
    threads: int
    batch_size: int


@dataclass(frozen=True)
class _Plan:
    """The tables a run fills; shipped to every CPU-stage task."""

    run_id: str
    cache_root: Path
    #: the feature computed from sound files (None: none, or precomputed MFCCs only)
    audio: AudioFeature | None
    images: tuple[_ImageJob, ...]

    @property
    def audio_shape(self) -> tuple[int, ...]:
        return tuple(self.audio.shape) if self.audio is not None else (0,)


def actor_resources(options: RayOptions, cluster: dict[str, float]) -> tuple[float, int]:
    """(logical CPUs, threads) per actor; a request the cluster cannot hold is refused here,
    where Ray Data would wait for resources forever."""
    total = float(cluster.get("CPU", 0))
    if options.actors < 1:
        raise InvalidValue("--actors must be at least 1")
    cpus = options.cpus_per_actor
    if cpus is None:
        cpus = max(CPU_STAGE_CPUS, (total - max(CPU_STAGE_CPUS, total / 4)) / options.actors)
    need = options.actors * cpus + CPU_STAGE_CPUS
    if need > total + 1e-9:
        raise InvalidValue(f"{options.actors} actor(s) x {cpus:g} CPU(s) plus {CPU_STAGE_CPUS:g} "
                         f"for reading files need {need:g} CPUs; the Ray cluster has {total:g}. "
                         "Use fewer --actors or fewer --threads per actor.")
    gpus = options.actors * options.gpus_per_actor
    if gpus > float(cluster.get("GPU", 0)) + 1e-9:
        raise InvalidValue(f"{options.actors} actor(s) x {options.gpus_per_actor:g} GPU(s) need "
                         f"{gpus:g} GPUs; the Ray cluster has {cluster.get('GPU', 0):g}")
    return cpus, max(1, math.floor(cpus + 0.5))


# --- stage 1: read, hash, audio (Ray tasks) ----------------------------------------------------

_TABLES: dict[str, Any] = {"run": None, "tables": {}}


def _worker_table(plan: _Plan, name: str, extractor_id: str, params_key: str,
                  shape: tuple[int, ...]) -> FeatureTable:
    """One read-only table per worker process and run (a later run must see newer chunks)."""
    if _TABLES["run"] != plan.run_id:
        _TABLES["run"], _TABLES["tables"] = plan.run_id, {}
    tables = _TABLES["tables"]
    if name not in tables:
        tables[name] = FeatureStore(plan.cache_root).table(extractor_id, params_key, shape)
    return tables[name]


def _key(item_id: str, path: str) -> tuple[str, str]:
    """(cache key, "") or ("", reason): the same key and the same skip reason as `_keys` in
    single-process extraction."""
    try:
        return item_key(Item(item_id, "", ""), Path(path) if path else None), ""
    except (OSError, ValueError) as exc:
        return "", f"cannot read file ({exc})"


def _prepare(batch: dict[str, np.ndarray], plan: _Plan) -> dict[str, np.ndarray]:
    """Keys, cache flags and missing audio features of a batch of manifest rows."""
    n = len(batch["id"])
    ids, images, audios = batch["id"].tolist(), batch["image"].tolist(), batch["audio"].tolist()
    image_keys, image_skips = zip(*(_key(i, p) for i, p in zip(ids, images, strict=True)),
                                  strict=True) if n else ((), ())
    out = dict(batch)
    out["image_key"] = np.array(image_keys, dtype=object)
    out["image_skip"] = np.array(image_skips, dtype=object)
    for job in plan.images:
        table = _worker_table(plan, f"image{job.column}", job.backbone, job.params_key,
                              (job.dim,))
        out[f"cached{job.column}"] = np.array([bool(k) and k in table for k in image_keys])
    out.update(_audio_columns(ids, audios, plan))
    return out


def _audio_columns(ids: list[str], paths: list[str], plan: _Plan) -> dict[str, np.ndarray]:
    n = len(ids)
    keys, skips, states = [""] * n, [""] * n, ["none"] * n
    values = np.zeros((n, *plan.audio_shape), np.float32)
    if plan.audio is not None:
        feature = plan.audio
        table = _worker_table(plan, "audio", feature.id, feature.key(), plan.audio_shape)
        with cache_dir_in_use(plan.cache_root):  # a feature's side exports: same folder
            for i, (item_id, path) in enumerate(zip(ids, paths, strict=True)):
                keys[i], skips[i] = _key(item_id, path)
                if skips[i]:
                    states[i] = "skip"
                elif keys[i] in table:
                    states[i] = "cached"
                else:
                    states[i], skips[i] = _compute_audio(feature, Path(path), values, i)
    return {"audio_key": np.array(keys, dtype=object), "audio_skip": np.array(skips, dtype=object),
            "audio_state": np.array(states, dtype=object), "audio_values": values}


def _compute_audio(feature, path: Path, values: np.ndarray, i: int) -> tuple[str, str]:
    try:
        values[i] = feature(path)
    except DataError as err:
        return "skip", err.problem
    return "computed", ""


# --- stage 2: embed images (Ray actors) --------------------------------------------------------

class _Embedder:
    """One backbone per actor, built once, on the first batch that needs it (a re-run whose
    images are all cached loads no model); only rows not yet cached are embedded. Subclassed
    per job by `_embedder_class` (Ray Data builds actors without arguments then)."""

    job: _ImageJob

    def __init__(self) -> None:
        import torch

        torch.set_num_threads(self.job.threads)
        self.extractor: Any = None
        self.device: Any = None

    def _load(self) -> None:
        from .image import ImageExtractor

        job = self.job
        self.extractor = ImageExtractor(job.backbone, job.weights, runtime=job.runtime,
                                        cache_dir=job.cache_dir, threads=job.threads,
                                        precision=job.precision)
        if self.extractor.params_key() != job.params_key:
            raise RuntimeError(f"{job.backbone} on this Ray worker gives cache key "
                               f"{self.extractor.params_key()}, the driver {job.params_key}: "
                               "install the same scenefusion and weights on every node")
        self.device = _device(job, self.extractor)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        c = self.job.column
        n = len(batch["id"])
        todo = [i for i in range(n) if not batch["image_skip"][i] and not batch[f"cached{c}"][i]]
        if todo and self.extractor is None:
            self._load()
        skips = [""] * n
        emb = np.zeros((n, self.job.dim), np.float32)
        good, tensors = [], []
        for i in todo:
            try:
                tensors.append(self.extractor.preprocess(open_image_rgb(Path(batch["image"][i]))))
                good.append(i)
            except DataError as err:
                skips[i] = err.problem
        for start in range(0, len(good), self.job.batch_size):
            rows = good[start:start + self.job.batch_size]
            emb[rows] = self._embed(tensors[start:start + self.job.batch_size])
        out = dict(batch)
        out[f"emb{c}"] = emb
        out[f"skip{c}"] = np.array(skips, dtype=object)
        out[f"done{c}"] = np.isin(np.arange(n), good)
        return out

    def _embed(self, tensors: list) -> np.ndarray:
        import torch

        batch = torch.stack(tensors)
        if self.device is None:
            return self.extractor.embed(batch)
        with torch.inference_mode():
            return self.extractor.model.embed(batch.to(self.device)).float().cpu().numpy()


def _embedder_class(job: _ImageJob) -> type[_Embedder]:
    """An `_Embedder` bound to `job` (shipped with the class, not as constructor arguments,
    which Ray would keep in the object store for actor restarts)."""
    return type(f"Embed_{job.backbone}", (_Embedder,), {"job": job})


def _device(job: _ImageJob, extractor) -> Any:
    """The GPU for a torch-runtime actor that reserved one; None (embed on CPU) otherwise."""
    import torch

    if job.runtime != "torch" or not torch.cuda.is_available():
        return None
    extractor.model.to("cuda")
    return torch.device("cuda")


# --- driver ------------------------------------------------------------------------------------

class _Chunks:
    """Buffers one table's new rows and stores them a chunk at a time; flushed on the way out,
    also on Ctrl-C, so an interrupted run keeps what came back."""

    def __init__(self, table: FeatureTable, flush_every: int) -> None:
        self.table, self.flush_every = table, flush_every
        self.keys: list[str] = []
        self.rows: list[np.ndarray] = []

    def add(self, key: str, row: np.ndarray) -> None:
        self.keys.append(key)
        self.rows.append(row)
        if len(self.keys) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        if self.keys:
            keys, rows = self.keys, self.rows
            self.keys, self.rows = [], []
            self.table.put_many(keys, np.stack(rows))


@dataclass
class _Tally:
    """Counts and skips of one table."""

    table: FeatureTable
    writer: _Chunks
    computed: int = 0
    reused: int = 0
    skipped: list[Skip] = field(default_factory=list)

    def take(self, key: str, row: np.ndarray, ident: str, what: str) -> None:
        if problem := not_finite(row, what):  # never cached: the item is a named skip
            self.skipped.append(Skip(ident, problem))
        elif key in self.table:  # a worker that cannot see the cache folder recomputed it
            self.reused += 1
        else:
            self.writer.add(key, row)
            self.computed += 1


def manifest(dataset: Dataset) -> list[dict[str, str]]:
    """One row per item: what the pipeline needs of it, paths as strings ("" when none)."""
    return [{"id": it.id, "label": it.label, "group": it.group,
             "image": str(it.image) if it.image else "", "audio": str(it.audio) if it.audio else ""}
            for it in dataset.items]


def _plan(dataset: Dataset, store: FeatureStore, recipe: FeatureRecipe, threads: int) -> _Plan:
    """Resolve every extractor on the driver (cache keys, runtime) and export ONNX graphs once
    here, so the actors only load them."""
    import torch

    from .image import ImageExtractor

    jobs = []
    for c, b in enumerate(recipe.backbones):
        ex = ImageExtractor(b, recipe.weights_of(b), runtime=recipe.runtime,
                            cache_dir=store.root, threads=1, precision=recipe.precision)
        size = ex.spec.input_size
        ex.embed(torch.zeros(1, 3, size, size))  # loads weights, exports the ONNX graph once
        jobs.append(_ImageJob(c, b, ex.weights, ex.runtime, recipe.precision, store.root,
                              ex.params_key(), ex.dim, threads, recipe.batch_size))
    audio = recipe.audio
    if audio is not None and precomputed_audio(dataset.items, audio) is not None:
        audio = None  # every item ships its MFCC rows: nothing to compute
    return _Plan(uuid.uuid4().hex, store.root, audio, tuple(jobs))


def _pipeline(rows: list[dict[str, str]], plan: _Plan, options: RayOptions, cpus: float):
    import ray

    ray.data.DataContext.get_current().enable_progress_bars = False
    if not log.isEnabledFor(logging.INFO):  # Ray Data logs every execution at INFO
        logging.getLogger("ray.data").setLevel(logging.ERROR)
    blocks = max(1, math.ceil(len(rows) / ROWS_PER_TASK))
    ds = ray.data.from_items(rows, override_num_blocks=blocks)
    ds = ds.map_batches(_prepare, fn_kwargs={"plan": plan}, batch_size=ROWS_PER_TASK,
                        batch_format="numpy", num_cpus=CPU_STAGE_CPUS)
    for job in plan.images:
        ds = ds.map_batches(_embedder_class(job), batch_size=ROWS_PER_TASK,
                            batch_format="numpy",
                            compute=ray.data.ActorPoolStrategy(size=options.actors),
                            num_cpus=cpus, num_gpus=options.gpus_per_actor or None)
    return ds


def _collect(batch: dict[str, np.ndarray], plan: _Plan, tallies: dict[str, _Tally]) -> None:
    """Store one streamed batch's new features and count what each row was."""
    audio = tallies.get("audio")
    for i in range(len(batch["id"])):
        ident = batch["image"][i] or batch["id"][i]
        for job in plan.images:
            tally, c = tallies[f"image{job.column}"], job.column
            reason = batch["image_skip"][i] or batch[f"skip{c}"][i]
            if reason:
                tally.skipped.append(Skip(ident, reason))
            elif batch[f"cached{c}"][i]:
                tally.reused += 1
            elif batch[f"done{c}"][i]:
                tally.take(batch["image_key"][i], batch[f"emb{c}"][i], ident,
                           f"{job.backbone} embedding")
        if audio is not None:
            state = batch["audio_state"][i]
            if state == "skip":
                audio.skipped.append(Skip(batch["audio"][i] or batch["id"][i],
                                          batch["audio_skip"][i]))
            elif state == "cached":
                audio.reused += 1
            elif state == "computed":
                audio.take(batch["audio_key"][i], batch["audio_values"][i],
                           batch["audio"][i] or batch["id"][i], f"{plan.audio.id} feature")


@contextlib.contextmanager
def _filling(tables: dict[str, FeatureTable], flush_every: int) -> Iterator[dict[str, _Tally]]:
    """Hold every table's lock (a concurrent run waits, then reuses) and flush what came back
    on the way out, also on Ctrl-C or a failed job."""
    with contextlib.ExitStack() as stack:
        for t in tables.values():
            stack.enter_context(t.locked())
        tallies = {name: _Tally(t, _Chunks(t, flush_every)) for name, t in tables.items()}
        try:
            yield tallies
        finally:
            for tally in tallies.values():
                tally.writer.flush()


def extract_distributed(
    dataset: Dataset,
    store: FeatureStore,
    recipe: FeatureRecipe,
    *,
    options: RayOptions = RayOptions(),
    progress: StageProgress | None = None,
) -> DistributedExtraction:
    """Fill the feature cache for `dataset` on a Ray cluster: the tables and keys that
    `extract_dataset` reads, so it (and `scenefusion run`) afterwards computes nothing.
    Starts a local cluster unless connected or given `options.address`; a cluster this call
    started is shut down at the end."""
    import ray

    # a one-modality data set runs only its modality's extractors, as extract_dataset does
    recipe = recipe.for_modalities(dataset.modalities)
    owned = not ray.is_initialized()
    startup = connect(options.address)
    try:
        return _run(dataset, store, recipe, options, progress, startup)
    finally:
        if owned:
            ray.shutdown()


def _run(dataset: Dataset, store: FeatureStore, recipe: FeatureRecipe, options: RayOptions,
         progress: StageProgress | None, startup: float) -> DistributedExtraction:
    import ray

    start = time.perf_counter()
    cpus, threads = actor_resources(options, ray.cluster_resources())
    plan = _plan(dataset, store, recipe, threads)
    tables = {f"image{j.column}": store.table(j.backbone, j.params_key, (j.dim,))
              for j in plan.images}
    if plan.audio is not None:
        tables["audio"] = store.table(plan.audio.id, plan.audio.key(), plan.audio_shape)
    rows = manifest(dataset)
    done = 0
    with _filling(tables, options.flush_every) as tallies:
        for batch in _pipeline(rows, plan, options, cpus).iter_batches(
                batch_size=ROWS_PER_TASK, batch_format="numpy"):
            _collect(batch, plan, tallies)
            done += len(batch["id"])
            if progress:
                progress("ray: features", done, len(rows))
    return _summary(dataset, plan, recipe.audio, tallies, time.perf_counter() - start, startup)


def _summary(dataset: Dataset, plan: _Plan, audio: AudioFeature | None,
             tallies: dict[str, _Tally], seconds: float, startup: float
             ) -> DistributedExtraction:
    def row(t: _Tally | None) -> dict[str, float]:
        if t is None:  # precomputed MFCCs: all reused, as in extract_audio
            return {"computed": 0, "reused": len(dataset), "seconds": 0.0, "skipped": 0}
        return {"computed": t.computed, "reused": t.reused, "seconds": seconds,
                "skipped": len(t.skipped)}

    extraction, shapes, skipped = {}, {}, []
    if audio is not None:
        extraction[f"audio:{audio.id}"] = row(tallies.get("audio"))
        shapes[f"audio:{audio.id}"] = tuple(audio.shape)
        skipped += tallies["audio"].skipped if "audio" in tallies else []
    for job in plan.images:
        tally = tallies[f"image{job.column}"]
        extraction[f"image:{job.backbone}"] = row(tally)
        shapes[f"image:{job.backbone}"] = (job.dim,)
        skipped += tally.skipped
    return DistributedExtraction(len(dataset), extraction, shapes, skipped, seconds, startup)


__all__ = ["DistributedExtraction", "RayOptions", "actor_resources", "connect",
           "extract_distributed", "manifest"]
