"""ONNX Runtime sessions over graphs cached in the feature cache folder, for every network that
runs on ONNX Runtime (image backbones, the aiSFX audio embedding).

A cached graph can be damaged (truncated by a kill, corrupted on disk): its checksum or its
loading says so (:mod:`scenefusion.cache_integrity`), and it is logged, moved aside and built
again once; a fresh graph that still does not load is a :class:`CacheError` naming the file,
never a rebuild loop. Imports onnxruntime only when a session is built.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from ..cache_integrity import load_or_build
from ..files import written_atomically
from .store import CacheError

log = logging.getLogger(__name__)

T = TypeVar("T")

#: ``build(path)`` writes the graph to ``path`` and returns None, or returns the graph's bytes
#: when they could not be written there (they are then used from memory).
Build = Callable[[Path], bytes | None]


def new_session(model: Path | bytes, threads: int, *, spinning: bool = True,
                providers: tuple[str, ...] = ("CPUExecutionProvider",)) -> Any:
    """An ONNX Runtime session over a graph file or its bytes: ``threads`` intra-op threads,
    one inter-op thread, on ``providers`` (the CPU by default; see :mod:`.device`).
    ``spinning=False`` stops idle intra-op threads from busy-waiting, for small graphs run
    between other CPU work (their spinning steals its cores)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    source = str(model) if isinstance(model, Path) else model
    return ort.InferenceSession(source, options, providers=list(providers))


def load_cached(path: Path, build: Build, load: Callable[[Path | bytes], T], *,
                fresh: Callable[[Path | bytes], T] | None = None, what: str = "ONNX export",
                verb: str = "exporting") -> T:
    """``load`` the graph at ``path`` when its checksum holds and it loads; when it is missing,
    damaged (no or another checksum: a flipped byte still parses) or does not load (logged as
    "cached {what} {path} cannot be loaded ...; {verb} it again" and moved aside), ``build`` it,
    seal it and load the fresh graph with ``fresh`` (default: ``load``), whose failure
    propagates (:func:`scenefusion.cache_integrity.load_or_build`)."""
    return load_or_build(path, build, load, fresh=fresh, what=what, verb=verb)


def cached_session(path: Path, build: Build, threads: int, *, name: str, hint: str,
                   what: str = "ONNX export", verb: str = "exporting",
                   spinning: bool = True,
                   providers: tuple[str, ...] = ("CPUExecutionProvider",)) -> Any:
    """A session (:func:`new_session`) over the graph cached at ``path``, built by ``build``
    when missing or damaged (:func:`load_cached`). A fresh graph that does not load either
    raises :class:`CacheError`: "ONNX Runtime cannot load the fresh {name} (...); {hint}"."""

    def cached(model: Path | bytes) -> Any:
        return new_session(model, threads, spinning=spinning, providers=providers)

    def fresh(model: Path | bytes) -> Any:
        try:
            return cached(model)
        except Exception as exc:  # noqa: BLE001 (onnxruntime's errors share no base class)
            raise CacheError(path, f"ONNX Runtime cannot load the fresh {name} "
                                   f"({str(exc).strip()[:200]}); {hint}") from exc

    return load_cached(path, build, cached, fresh=fresh, what=what, verb=verb)


def write_or_keep(path: Path, graph: bytes, what: str) -> bytes | None:
    """Write ``graph`` to ``path`` atomically (None: written); when the cache folder cannot be
    written, log it and return the bytes so that the caller uses the graph from memory (each
    process then builds it again)."""
    try:
        with written_atomically(path) as tmp:
            tmp.write_bytes(graph)
    except OSError as exc:
        log.warning("cannot cache the %s at %s (%s); using it from memory, so each process "
                    "exports it again", what, path, exc)
        return graph
    return None
