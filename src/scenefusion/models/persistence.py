"""Save and load every scenefusion model and fusion object without pickle.

Layout of a saved model directory::

    manifest.json          kind, model id, params, classes, library versions (plain JSON)
    weights.safetensors    torch models: network weights + input scaler (tensors only)
    *.skops                scikit-learn parts (pipelines, scalers/PCA, stacking meta-learner)
    classifier/, members/N/  nested models of fusion objects, saved recursively
    audio_encoder/         early fusion's fitted audio encoder (e.g. an LSTM), if it has one

Trust note: JSON and safetensors files hold only data and cannot run code when read. The
``.skops`` files are loaded with ``skops.io.load`` after ``get_untrusted_types`` is checked
against :data:`SKOPS_ALLOWED_TYPES`, an explicit allowlist of scikit-learn/numpy types; any
other type makes :func:`load_model` refuse the file. Nothing is ever read with ``pickle.load``
or ``torch.load``. This stops code execution from a tampered file, but not a model that was
trained badly on purpose: still load models only from sources you trust.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import logging
import platform
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import sklearn
import skops.io as sio
import torch
from safetensors.torch import load_file, save_file
from sklearn.frozen import FrozenEstimator

from scenefusion.files import FileProblem, read_json_object
from scenefusion.models.base import MODELS
from scenefusion.models.classical import ClassicalModel
from scenefusion.models.dense import TorchModel
from scenefusion.models.fusion import EarlyFusion, HybridFusion, LateFusion

log = logging.getLogger(__name__)

FORMAT = "scenefusion-model"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"

#: Types that skops does not trust by default but that our pipelines legitimately contain
#: (tree structures, neighbour indices, boosting predictors and their losses). Anything else
#: found in a ``.skops`` file is refused.
SKOPS_ALLOWED_TYPES: frozenset[str] = frozenset(
    {
        "sklearn.tree._tree.Tree",
        "sklearn.neighbors._kd_tree.KDTree",
        "sklearn.neighbors._ball_tree.BallTree",
        "sklearn.metrics._dist_metrics.EuclideanDistance64",
        "sklearn.metrics._dist_metrics.EuclideanDistance32",
        "sklearn.metrics._dist_metrics.ManhattanDistance64",
        "sklearn.metrics._dist_metrics.MinkowskiDistance64",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
        "sklearn._loss.loss.HalfMultinomialLoss",
        "sklearn._loss.loss.HalfBinomialLoss",
        "sklearn._loss.link.MultinomialLogit",
        "sklearn._loss.link.LogitLink",
        "sklearn.calibration._CalibratedClassifier",
        "sklearn.calibration._SigmoidCalibration",
        "numpy.dtype",
    }
)


class UntrustedModelError(ValueError):
    """A saved file contains object types outside the allowlist; it was not loaded."""


class ModelLoadError(ValueError):
    """A saved model is damaged or inconsistent (truncated file, edited manifest, tensors that
    do not fit): refused with the file and the reason, never half-loaded."""

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"refusing to load {path}: {reason}")


#: Every key a manifest may hold; anything else means it was edited or is not ours.
MANIFEST_KEYS = frozenset({"format", "format_version", "kind", "classes", "classes_dtype",
                           "classes_sha256", "versions", "model_id", "params", "state"})
KINDS = ("classical", "torch", "early", "late", "hybrid")


def class_fingerprint(classes: Iterable[Any]) -> str:
    """A short digest of a class list, order included: a reordered or shortened list (which
    would silently relabel predictions) no longer matches the model it was saved with."""
    blob = json.dumps([_jsonable(c) for c in classes]).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


@contextlib.contextmanager
def _refusing(path: Path) -> Iterator[None]:
    """Any failure while reading `path` becomes one ModelLoadError naming it (a library's own
    message is kept as the reason); interrupts and memory errors pass through."""
    try:
        yield
    except (ModelLoadError, UntrustedModelError, KeyboardInterrupt, MemoryError):
        raise
    except FileNotFoundError:
        raise ModelLoadError(path, "file not found") from None
    except Exception as exc:  # noqa: BLE001 - every library raises its own types here
        detail = " ".join(str(exc).split())  # torch lists its findings over many lines
        if len(detail) > 300:
            detail = detail[:300] + " ..."
        raise ModelLoadError(path, f"{type(exc).__name__}: {detail}") from None


# -- small helpers ----------------------------------------------------------------------------
def _versions() -> dict[str, str]:
    def version(dist: str) -> str:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return "unknown"

    return {
        "scenefusion": version("scenefusion"),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scikit-learn": sklearn.__version__,
        "torch": torch.__version__,
        "skops": version("skops"),
        "safetensors": version("safetensors"),
    }


def _jsonable(obj: Any) -> Any:
    """Plain-JSON copy of params/state (tuples -> lists, numpy scalars -> Python)."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    raise TypeError(f"cannot store parameter value of type {type(obj).__name__} in a manifest")


def _write_manifest(directory: Path, kind: str, model: Any, **fields: Any) -> None:
    classes = np.asarray(model.classes_)
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "classes": classes.tolist(),
        "classes_dtype": classes.dtype.str,
        "classes_sha256": class_fingerprint(classes.tolist()),
        "versions": _versions(),
        **{k: _jsonable(v) for k, v in fields.items()},
    }
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))


def _read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"no {MANIFEST} in {directory}: not a saved scenefusion model")
    try:
        manifest = read_json_object(path)
    except FileProblem as err:
        raise ModelLoadError(path, err.problem) from None
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        raise ModelLoadError(
            path, f"unsupported format {manifest.get('format')!r} "
            f"v{manifest.get('format_version')!r} (expected {FORMAT!r} v{FORMAT_VERSION})"
        )
    missing = [k for k in ("kind", "classes", "classes_dtype") if k not in manifest]
    if missing:
        raise ModelLoadError(path, f"missing key(s) {', '.join(missing)}")
    unknown = sorted(set(manifest) - MANIFEST_KEYS)
    if unknown:
        raise ModelLoadError(path, f"unknown manifest key(s) {unknown}")
    if manifest["kind"] not in KINDS:
        raise ModelLoadError(path, f"unknown model kind {manifest['kind']!r}; expected one of "
                                   f"{', '.join(KINDS)}")
    classes = manifest["classes"]
    if not isinstance(classes, list) or len(classes) < 2 or len(set(map(str, classes))) != len(
            classes):
        raise ModelLoadError(path, "'classes' must list at least two distinct classes")
    expected = manifest.get("classes_sha256")
    if expected is not None and expected != class_fingerprint(classes):
        raise ModelLoadError(path, "the class list does not match its fingerprint "
                                   "(reordered or edited)")
    for key in ("params", "state"):
        if not isinstance(manifest.get(key, {}), dict):
            raise ModelLoadError(path, f"'{key}' must be an object")
    saved = (manifest.get("versions") or {}).get("scikit-learn")
    if saved and saved != sklearn.__version__:
        log.warning(
            "%s was saved with scikit-learn %s, running %s", path, saved, sklearn.__version__
        )
    return manifest


def _classes(manifest: dict[str, Any]) -> np.ndarray:
    return np.asarray(manifest["classes"], dtype=np.dtype(manifest["classes_dtype"]))


def _check_classes(path: Path, manifest: dict[str, Any], found: Any) -> None:
    """The classes a loaded part predicts must be the manifest's, in its order."""
    if [str(c) for c in np.asarray(found).tolist()] != [str(c) for c in manifest["classes"]]:
        raise ModelLoadError(path, f"predicts classes {np.asarray(found).tolist()} but the "
                                   f"manifest lists {manifest['classes']}")


def _dump_skops(obj: Any, path: Path) -> None:
    sio.dump(obj, path)
    bad = sorted(set(sio.get_untrusted_types(file=path)) - SKOPS_ALLOWED_TYPES)
    if bad:  # fail at save time rather than producing a file we would refuse to load
        path.unlink()
        raise UntrustedModelError(f"cannot save {path.name}: types outside the allowlist: {bad}")


def _load_skops(path: Path, extra_trusted: Iterable[str] = ()) -> Any:
    """skops load restricted to the allowlist (plus explicitly passed extra types); a file
    that is not a skops archive (truncated, empty, a pickle renamed) is refused unread."""
    with _refusing(path):
        untrusted = sio.get_untrusted_types(file=path)
    bad = sorted(set(untrusted) - SKOPS_ALLOWED_TYPES - set(extra_trusted))
    if bad:
        raise UntrustedModelError(
            f"refusing to load {path}: it contains types outside the allowlist: {bad}. "
            "Only if you trust this file, pass extra_trusted_types=[...] to load_model."
        )
    with _refusing(path):
        return sio.load(path, trusted=untrusted)


def _build(path: Path, model_id: Any, base: type, params: dict[str, Any]) -> Any:
    """The model class named in the manifest at `path`, built with the manifest's params."""
    cls = MODELS.get(model_id) if isinstance(model_id, str) and model_id in MODELS else None
    if cls is None or not issubclass(cls, base):
        raise ModelLoadError(path, f"unknown {base.__name__} id {model_id!r}")
    with _refusing(path):
        return cls(**params)


def _unfrozen(model: Any) -> Any:
    """The fitted model inside a ``FrozenEstimator`` (prefit fusion members, encoders)."""
    return model.estimator if isinstance(model, FrozenEstimator) else model


def _classical_params(params: dict[str, Any]) -> dict[str, Any]:
    """Manifest params -> keywords; models saved before hyper-parameters became explicit
    ``__init__`` keywords kept them in one ``params`` dict."""
    params = dict(params)
    return {**params, **(params.pop("params", None) or {})}


# -- public API -------------------------------------------------------------------------------
def save_model(model: Any, directory: Path | str) -> Path:
    """Save a fitted model or fusion object to ``directory`` (created; files overwritten)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model = _unfrozen(model)
    if not hasattr(model, "classes_"):
        raise ValueError(f"{type(model).__name__} is not fitted; nothing to save")
    if isinstance(model, ClassicalModel):
        _dump_skops(model.pipeline_, directory / "pipeline.skops")
        _write_manifest(
            directory,
            "classical",
            model,
            model_id=model.model_id,
            params=model.get_params(deep=False),
            state={"best_params": model.best_params_, "n_features_in": model.n_features_in_},
        )
    elif isinstance(model, TorchModel):
        tensors = {
            f"net.{k}": v.detach().contiguous() for k, v in model.network_.state_dict().items()
        }
        tensors["scaler.mean"] = torch.from_numpy(np.ascontiguousarray(model.mean_))
        tensors["scaler.scale"] = torch.from_numpy(np.ascontiguousarray(model.scale_))
        save_file(tensors, str(directory / "weights.safetensors"))
        _write_manifest(
            directory,
            "torch",
            model,
            model_id=model.model_id,
            params=model.get_params(deep=False),
            state={
                "n_features_in": model.n_features_in_,
                "best_epoch": model.best_epoch_,
                "history": model.history_,
            },
        )
    elif isinstance(model, EarlyFusion):
        save_model(model.classifier_, directory / "classifier")
        _dump_skops(model.transformers_, directory / "transformers.skops")
        has_encoder = model.audio_encoder is not None
        if has_encoder:  # a fitted model in its own right: saved recursively, not as a param
            save_model(model.audio_encoder, directory / "audio_encoder")
        skip = {"model", "audio_encoder"}
        params = {k: v for k, v in model.get_params(deep=False).items() if k not in skip}
        _write_manifest(
            directory,
            "early",
            model,
            model_id=model.fusion_id,
            params=params,
            state={"n_features_in": model.n_features_in_, "audio_encoder": has_encoder},
        )
    elif isinstance(model, (LateFusion, HybridFusion)):
        for i, name in enumerate(model.member_names_):
            save_model(model.members_[name], directory / "members" / str(i))
        if model.meta_ is not None:
            _dump_skops(model.meta_, directory / "meta.skops")
        skip = {"models", "early"}
        params = {k: v for k, v in model.get_params(deep=False).items() if k not in skip}
        _write_manifest(
            directory,
            model._family,
            model,
            model_id=model.fusion_id,
            params=params,
            state={
                "member_names": model.member_names_,
                "weights": model.weights_,
                "combiner_source": model.combiner_source_,
            },
        )
    else:
        raise TypeError(f"don't know how to save {type(model).__name__}")
    return directory


def load_model(directory: Path | str, *, extra_trusted_types: Iterable[str] = ()) -> Any:
    """Load a model saved by :func:`save_model` (see the module trust note)."""
    directory = Path(directory)
    manifest = _read_manifest(directory)
    manifest_path = directory / MANIFEST
    with _refusing(manifest_path):  # a missing state entry or a wrongly typed value
        return _load_parts(directory, manifest, tuple(extra_trusted_types))


def _load_parts(directory: Path, manifest: dict[str, Any], extra: tuple[str, ...]) -> Any:
    manifest_path = directory / MANIFEST
    kind, params, state = manifest["kind"], manifest.get("params", {}), manifest.get("state", {})
    if kind == "classical":
        model = _build(manifest_path, manifest.get("model_id"), ClassicalModel,
                       _classical_params(params))
        pipeline = directory / "pipeline.skops"
        model.pipeline_ = _load_skops(pipeline, extra)
        _check_classes(pipeline, manifest, getattr(model.pipeline_, "classes_", []))
        model.classes_ = np.asarray(model.pipeline_.classes_)
        model.best_params_ = state["best_params"]
        model.n_features_in_ = state["n_features_in"]
    elif kind == "torch":
        model = _build(manifest_path, manifest.get("model_id"), TorchModel, params)
        weights = directory / "weights.safetensors"
        with _refusing(weights):
            tensors = load_file(str(weights))
            model.mean_ = tensors.pop("scaler.mean").numpy()
            model.scale_ = tensors.pop("scaler.scale").numpy()
        model.classes_ = _classes(manifest)
        model.n_features_in_ = state["n_features_in"]
        with _refusing(weights):  # wrong shapes, missing or extra tensors
            net = model._build_network(len(model.classes_))
            net.load_state_dict({k.removeprefix("net."): v for k, v in tensors.items()},
                                strict=True)
        model.network_ = net.eval()
        model.best_epoch_ = state["best_epoch"]
        model.history_ = state["history"]
    elif kind == "early":
        classifier = load_model(directory / "classifier", extra_trusted_types=extra)
        encoder = None
        if state.get("audio_encoder"):  # the manifest decides, not a possibly stale folder
            encoder = load_model(directory / "audio_encoder", extra_trusted_types=extra)
        _check_classes(directory / "classifier", manifest, classifier.classes_)
        model = EarlyFusion(model=classifier, **params,
                            audio_encoder=None if encoder is None else FrozenEstimator(encoder))
        model.transformers_ = _load_skops(directory / "transformers.skops", extra)
        model.classifier_ = classifier
        model.classes_ = _classes(manifest)
        model.n_features_in_ = state["n_features_in"]
    elif kind in ("late", "hybrid"):
        names = state["member_names"]
        params = {k: v for k, v in params.items() if k != "prefit"}  # older manifests had it
        members = {
            name: FrozenEstimator(load_model(directory / "members" / str(i),
                                             extra_trusted_types=extra))
            for i, name in enumerate(names)
        }
        for i, member in enumerate(members.values()):
            _check_classes(directory / "members" / str(i), manifest, member.classes_)
        if kind == "late":
            model = LateFusion(models=members, **params)
        else:
            early = members[HybridFusion.EARLY]
            rest = {n: m for n, m in members.items() if n != HybridFusion.EARLY}
            model = HybridFusion(early=early, models=rest, **params)
        model.members_ = members
        model.member_names_ = list(names)
        model.classes_ = _classes(manifest)
        model.weights_ = state["weights"]
        model.combiner_source_ = state["combiner_source"]
        meta = directory / "meta.skops"
        model.meta_ = _load_skops(meta, extra) if meta.is_file() else None
    else:  # unreachable: _read_manifest checked the kind
        raise ModelLoadError(manifest_path, f"unknown model kind {kind!r}")
    log.info("loaded %s model %s from %s", kind, manifest.get("model_id"), directory)
    return model
