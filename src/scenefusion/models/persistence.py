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

import importlib.metadata
import json
import logging
import platform
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import sklearn
import skops.io as sio
import torch
from safetensors.torch import load_file, save_file
from sklearn.frozen import FrozenEstimator

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
        "versions": _versions(),
        **{k: _jsonable(v) for k, v in fields.items()},
    }
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))


def _read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"no {MANIFEST} in {directory}: not a saved scenefusion model")
    manifest = json.loads(path.read_text())
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path}: unsupported format {manifest.get('format')!r} "
            f"v{manifest.get('format_version')!r} (expected {FORMAT!r} v{FORMAT_VERSION})"
        )
    saved = manifest.get("versions", {}).get("scikit-learn")
    if saved and saved != sklearn.__version__:
        log.warning(
            "%s was saved with scikit-learn %s, running %s", path, saved, sklearn.__version__
        )
    return manifest


def _classes(manifest: dict[str, Any]) -> np.ndarray:
    return np.asarray(manifest["classes"], dtype=np.dtype(manifest["classes_dtype"]))


def _dump_skops(obj: Any, path: Path) -> None:
    sio.dump(obj, path)
    bad = sorted(set(sio.get_untrusted_types(file=path)) - SKOPS_ALLOWED_TYPES)
    if bad:  # fail at save time rather than producing a file we would refuse to load
        path.unlink()
        raise UntrustedModelError(f"cannot save {path.name}: types outside the allowlist: {bad}")


def _load_skops(path: Path, extra_trusted: Iterable[str] = ()) -> Any:
    """skops load restricted to the allowlist (plus explicitly passed extra types)."""
    untrusted = sio.get_untrusted_types(file=path)
    bad = sorted(set(untrusted) - SKOPS_ALLOWED_TYPES - set(extra_trusted))
    if bad:
        raise UntrustedModelError(
            f"refusing to load {path}: it contains types outside the allowlist: {bad}. "
            "Only if you trust this file, pass extra_trusted_types=[...] to load_model."
        )
    return sio.load(path, trusted=untrusted)


def _model_class(model_id: str, base: type) -> type:
    cls = MODELS.get(model_id) if model_id in MODELS else None
    if cls is None or not issubclass(cls, base):
        raise ValueError(f"manifest names unknown {base.__name__} id {model_id!r}")
    return cls


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
    kind, params, state = manifest["kind"], manifest.get("params", {}), manifest.get("state", {})
    extra = tuple(extra_trusted_types)
    if kind == "classical":
        model = _model_class(manifest["model_id"], ClassicalModel)(**_classical_params(params))
        model.pipeline_ = _load_skops(directory / "pipeline.skops", extra)
        model.classes_ = np.asarray(model.pipeline_.classes_)
        model.best_params_ = state["best_params"]
        model.n_features_in_ = state["n_features_in"]
    elif kind == "torch":
        model = _model_class(manifest["model_id"], TorchModel)(**params)
        tensors = load_file(str(directory / "weights.safetensors"))
        model.classes_ = _classes(manifest)
        model.n_features_in_ = state["n_features_in"]
        model.mean_ = tensors.pop("scaler.mean").numpy()
        model.scale_ = tensors.pop("scaler.scale").numpy()
        net = model._build_network(len(model.classes_))
        net.load_state_dict({k.removeprefix("net."): v for k, v in tensors.items()}, strict=True)
        model.network_ = net.eval()
        model.best_epoch_ = state["best_epoch"]
        model.history_ = state["history"]
    elif kind == "early":
        classifier = load_model(directory / "classifier", extra_trusted_types=extra)
        encoder = None
        if state.get("audio_encoder"):  # the manifest decides, not a possibly stale folder
            encoder = load_model(directory / "audio_encoder", extra_trusted_types=extra)
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
    else:
        raise ValueError(f"{directory}: unknown model kind {kind!r}")
    log.info("loaded %s model %s from %s", kind, manifest.get("model_id"), directory)
    return model
