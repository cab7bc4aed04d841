"""Save and load every scenefusion model and fusion object without pickle.

Long on purpose: each kind's save and its checked load sit side by side (one table, _KINDS),
so a change to a kind's files is made in both at once; the untrusted-file machinery they
share lives in :mod:`scenefusion.models.safe_files`.

Layout of a saved model directory::

    manifest.json          kind, model id, params, classes, library versions (plain JSON)
    weights.safetensors    torch models: network weights + input scaler (tensors only)
    *.skops                scikit-learn parts (pipelines, scalers/PCA, stacking meta-learner)
    classifier/, members/N/  nested models of fusion objects, saved recursively
    audio_encoder/         early fusion's fitted audio encoder (e.g. an LSTM), if it has one

Trust note (errors and allow-list: safe_files): JSON and safetensors files hold only data and
cannot run code when read. The ``.skops`` files are loaded with ``skops.io.load`` after
``get_untrusted_types`` is checked against :data:`SKOPS_ALLOWED_TYPES`, an explicit allowlist
of scikit-learn/numpy types; any other type makes :func:`load_model` refuse the file. Nothing
is ever read with ``pickle.load`` or ``torch.load``. This stops code execution from a tampered
file, but not a model that was trained badly on purpose: still load models only from sources
you trust.

Damage is refused, never half-loaded: a truncated or foreign file, an edited manifest (unknown
keys, kind or id, a class list that does not match its fingerprint or the model's outputs),
tensors with other names, shapes, dtypes or non-finite values all raise one
:class:`ModelLoadError` "refusing to load FILE: reason". A folder holding no model raises
:class:`ModelNotFoundError` (a ``FileNotFoundError``). Manifests saved before the class-list
fingerprint existed still load, with a warning.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import platform
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import sklearn
import torch
from safetensors.torch import load_file, save_file
from sklearn.frozen import FrozenEstimator

from ..files import FileProblem, read_json_object, written_atomically
from .base import MODELS
from .classical import ClassicalModel
from .combiners import COMBINERS, Combiner, make_combiner
from .dense import TorchModel
from .fusion import EarlyFusion, HybridFusion, LateFusion
from .safe_files import (
    SKOPS_ALLOWED_TYPES,
    ModelLoadError,
    ModelNotFoundError,
    UntrustedModelError,
    check_tensors,
    checked_scaler,
    dump_skops,
    load_skops,
    refusing,
)

__all__ = ["SKOPS_ALLOWED_TYPES", "ModelLoadError", "ModelNotFoundError", "UntrustedModelError",
           "class_fingerprint", "load_model", "save_model"]

log = logging.getLogger(__name__)

FORMAT = "scenefusion-model"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"

#: Every key a manifest may hold; anything else means it was edited or is not ours.
MANIFEST_KEYS = frozenset({"format", "format_version", "kind", "classes", "classes_dtype",
                           "classes_sha256", "versions", "model_id", "params", "state"})


def class_fingerprint(classes: Iterable[Any]) -> str:
    """A short digest of a class list, order included: a reordered or shortened list (which
    would silently relabel predictions) no longer matches the model it was saved with."""
    blob = json.dumps([_jsonable(c) for c in classes]).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


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
    with written_atomically(directory / MANIFEST) as tmp:  # written last: a model whose save
        tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True))  # was cut has none


def _read_manifest(directory: Path) -> dict[str, Any]:
    """manifest.json, checked before any other file of the model is opened."""
    path = directory / MANIFEST
    if not directory.exists():
        raise ModelNotFoundError(directory, "folder not found")
    if not directory.is_dir():
        raise ModelLoadError(directory, "not a folder (pass the folder save_model wrote)")
    if not path.is_file():
        raise ModelNotFoundError(path, "file not found (not a saved scenefusion model)")
    try:
        manifest = read_json_object(path)
    except FileProblem as err:
        raise ModelLoadError(path, err.problem) from None
    problem = _manifest_problem(manifest) or _class_list_problem(manifest)
    if problem:
        raise ModelLoadError(path, problem)
    if "classes_sha256" not in manifest:
        log.warning("%s has no class-list fingerprint (saved by an older scenefusion): its class "
                    "order is checked only against the fitted parts; save it again to add one",
                    path)
    saved = (manifest.get("versions") or {}).get("scikit-learn")
    if saved and saved != sklearn.__version__:
        log.warning(
            "%s was saved with scikit-learn %s, running %s", path, saved, sklearn.__version__
        )
    return manifest


def _manifest_problem(manifest: dict[str, Any]) -> str | None:
    """Why a manifest's format, keys or kind make it unusable (None: they are fine)."""
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        return (f"unsupported format {manifest.get('format')!r} "
                f"v{manifest.get('format_version')!r} (expected {FORMAT!r} v{FORMAT_VERSION})")
    missing = [k for k in ("kind", "classes", "classes_dtype") if k not in manifest]
    if missing:
        return f"missing key(s) {', '.join(missing)}"
    unknown = sorted(set(manifest) - MANIFEST_KEYS)
    if unknown:
        return f"unknown manifest key(s) {unknown}"
    if manifest["kind"] not in KINDS:
        return f"unknown model kind {manifest['kind']!r}; expected one of {', '.join(KINDS)}"
    for key in ("params", "state"):
        if not isinstance(manifest.get(key, {}), dict):
            return f"'{key}' must be an object"
    return None


def _class_list_problem(manifest: dict[str, Any]) -> str | None:
    """Why the class list cannot be trusted (None: it can): a shortened or reordered list
    would silently relabel predictions."""
    classes = manifest["classes"]
    if (not isinstance(classes, list) or len(classes) < 2
            or not all(isinstance(c, (str, int, float)) for c in classes)
            or len(set(map(str, classes))) != len(classes)):
        return "'classes' must list at least two distinct class labels"
    try:
        dtype = np.dtype(manifest["classes_dtype"])
        as_saved = np.asarray(classes, dtype=dtype).tolist()
    except (TypeError, ValueError, OverflowError):
        return f"'classes_dtype' {manifest['classes_dtype']!r} does not fit the classes"
    if dtype.kind not in "biufUSO" or [str(c) for c in as_saved] != [str(c) for c in classes]:
        return f"'classes_dtype' {manifest['classes_dtype']!r} does not fit the classes"
    expected = manifest.get("classes_sha256")
    if expected is not None and expected != class_fingerprint(classes):
        return "the class list does not match its fingerprint (reordered or edited)"
    return None


def _classes(manifest: dict[str, Any]) -> np.ndarray:
    return np.asarray(manifest["classes"], dtype=np.dtype(manifest["classes_dtype"]))


def _check_classes(path: Path, manifest: dict[str, Any], found: Any) -> None:
    """The classes a loaded part predicts must be the manifest's, in its order (their number
    is the model's output size, so a shortened list is caught too)."""
    if found is None:
        raise ModelLoadError(path, "holds no fitted classifier (no classes_)")
    if [str(c) for c in np.asarray(found).tolist()] != [str(c) for c in manifest["classes"]]:
        raise ModelLoadError(path, f"predicts classes {np.asarray(found).tolist()} but the "
                                   f"manifest lists {manifest['classes']}")


def _positive_int(path: Path, state: dict[str, Any], key: str) -> int:
    """A count stored in the manifest's state (feature numbers): a positive integer."""
    value = state[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ModelLoadError(path, f"state '{key}' must be a positive integer, got {value!r}")
    return value


def _build(path: Path, model_id: Any, base: type, params: dict[str, Any]) -> Any:
    """The model class named in the manifest at `path`, built with the manifest's params."""
    cls = MODELS.get(model_id) if isinstance(model_id, str) and model_id in MODELS else None
    if cls is None or not issubclass(cls, base):
        raise ModelLoadError(path, f"unknown {base.__name__} id {model_id!r}")
    with refusing(path):
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
    """Save a fitted model or fusion object to ``directory`` (created; files overwritten; the
    manifest is written last and atomically, so a save that was cut leaves no loadable half)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model = _unfrozen(model)
    if not hasattr(model, "classes_"):
        raise ValueError(f"{type(model).__name__} is not fitted; nothing to save")
    for kind, (cls, save, _) in _KINDS.items():
        if isinstance(model, cls):
            fields = save(model, directory)
            _write_manifest(directory, kind, model, **fields)
            return directory
    raise TypeError(f"don't know how to save {type(model).__name__}")


def _save_classical(model: ClassicalModel, directory: Path) -> dict[str, Any]:
    dump_skops(model.pipeline_, directory / "pipeline.skops")
    return {"model_id": model.model_id, "params": model.get_params(deep=False),
            "state": {"best_params": model.best_params_, "n_features_in": model.n_features_in_}}


def _save_torch(model: TorchModel, directory: Path) -> dict[str, Any]:
    tensors = {f"net.{k}": v.detach().contiguous() for k, v in model.network_.state_dict().items()}
    # torch.tensor copies: a model fitted in a Ray worker comes back with read-only arrays
    tensors["scaler.mean"] = torch.tensor(np.asarray(model.mean_))
    tensors["scaler.scale"] = torch.tensor(np.asarray(model.scale_))
    save_file(tensors, str(directory / "weights.safetensors"))
    return {"model_id": model.model_id, "params": model.get_params(deep=False),
            "state": {"n_features_in": model.n_features_in_, "best_epoch": model.best_epoch_,
                      "history": model.history_}}


def _save_early(model: EarlyFusion, directory: Path) -> dict[str, Any]:
    save_model(model.classifier_, directory / "classifier")
    dump_skops(model.transformers_, directory / "transformers.skops")
    has_encoder = model.audio_encoder is not None
    if has_encoder:  # a fitted model in its own right: saved recursively, not as a param
        save_model(model.audio_encoder, directory / "audio_encoder")
    params = {k: v for k, v in model.get_params(deep=False).items()
              if k not in ("model", "audio_encoder")}
    return {"model_id": model.fusion_id, "params": params,
            "state": {"n_features_in": model.n_features_in_, "audio_encoder": has_encoder}}


def _save_late(model: LateFusion | HybridFusion, directory: Path) -> dict[str, Any]:
    """Late and hybrid fusion: members under members/N, the combiner's id and settings in the
    params, its JSON state in the manifest and its fitted scikit-learn parts as <part>.skops."""
    combiner = model.combiner_
    if combiner.id not in COMBINERS or COMBINERS.get(combiner.id) is not type(combiner):
        raise ValueError(f"late combiner {combiner.name()!r} is not registered: register it "
                         f"with register_combiner to save a model that uses it")
    for i, name in enumerate(model.member_names_):
        save_model(model.members_[name], directory / "members" / str(i))
    for part in model.combiner_.parts:
        dump_skops(getattr(model.combiner_, part), directory / f"{part}.skops")
    params = {k: v for k, v in model.get_params(deep=False).items()
              if k not in ("models", "early", "method", "combiner")}
    params["combiner"] = {"id": combiner.id, "settings": combiner.settings()}
    return {"model_id": model.fusion_id, "params": params,
            "state": {"member_names": model.member_names_,
                      "combiner_source": model.combiner_source_,
                      **model.combiner_.full_state()}}


def load_model(directory: Path | str, *, extra_trusted_types: Iterable[str] = ()) -> Any:
    """Load a model saved by :func:`save_model` (see the module trust note).

    A damaged or edited model raises :class:`ModelLoadError` ("refusing to load FILE: reason");
    a folder with no saved model raises :class:`ModelNotFoundError`."""
    return _load(Path(directory), tuple(extra_trusted_types), ())


def _load(directory: Path, extra: tuple[str, ...], parents: tuple[Path, ...]) -> Any:
    """One saved model; `parents` are the folders of the models that contain it, so that a
    member folder linked back to one of them is refused instead of recursing forever."""
    here = directory.resolve()
    if here in parents:
        raise ModelLoadError(directory, "a member folder links back to a folder that contains it")
    manifest = _read_manifest(directory)
    with refusing(directory / MANIFEST):  # a missing state entry or a wrongly typed value
        model = _KINDS[manifest["kind"]][2](directory, manifest, extra, (*parents, here))
    log.info("loaded %s model %s from %s", manifest["kind"], manifest.get("model_id"), directory)
    return model


def _load_classical(directory: Path, manifest: dict[str, Any], extra: tuple[str, ...],
                    parents: tuple[Path, ...]) -> ClassicalModel:
    manifest_path, state = directory / MANIFEST, manifest.get("state", {})
    model = _build(manifest_path, manifest.get("model_id"), ClassicalModel,
                   _classical_params(manifest.get("params", {})))
    pipeline = directory / "pipeline.skops"
    model.pipeline_ = load_skops(pipeline, extra)
    _check_classes(pipeline, manifest, getattr(model.pipeline_, "classes_", None))
    model.n_features_in_ = _positive_int(manifest_path, state, "n_features_in")
    found = getattr(model.pipeline_, "n_features_in_", model.n_features_in_)
    if found != model.n_features_in_:
        raise ModelLoadError(pipeline, f"expects {found} features but the manifest says "
                                       f"{model.n_features_in_}")
    model.classes_ = np.asarray(model.pipeline_.classes_)
    model.best_params_ = state["best_params"]
    return model


def _load_torch(directory: Path, manifest: dict[str, Any], extra: tuple[str, ...],
                parents: tuple[Path, ...]) -> TorchModel:
    manifest_path, state = directory / MANIFEST, manifest.get("state", {})
    model = _build(manifest_path, manifest.get("model_id"), TorchModel,
                   manifest.get("params", {}))
    model.classes_ = _classes(manifest)
    model.n_features_in_ = _positive_int(manifest_path, state, "n_features_in")
    model.best_epoch_ = state["best_epoch"]
    model.history_ = state["history"]
    with refusing(manifest_path):  # params the network cannot be built from
        net = model._build_network(len(model.classes_))
    weights = directory / "weights.safetensors"
    with refusing(weights):
        tensors = load_file(str(weights))
    model.mean_, model.scale_ = checked_scaler(weights, tensors, model.n_features_in_)
    check_tensors(weights, tensors, net, len(model.classes_))
    with refusing(weights):  # anything the checks above did not foresee
        net.load_state_dict({k.removeprefix("net."): v for k, v in tensors.items()}, strict=True)
    model.network_ = net.eval()
    return model


def _load_early(directory: Path, manifest: dict[str, Any], extra: tuple[str, ...],
                parents: tuple[Path, ...]) -> EarlyFusion:
    manifest_path, state = directory / MANIFEST, manifest.get("state", {})
    classifier = _load(directory / "classifier", extra, parents)
    _check_classes(directory / "classifier", manifest, classifier.classes_)
    encoder = None
    if state.get("audio_encoder"):  # the manifest decides, not a possibly stale folder
        encoder = _load(directory / "audio_encoder", extra, parents)
    model = EarlyFusion(model=classifier, **manifest.get("params", {}),
                        audio_encoder=None if encoder is None else FrozenEstimator(encoder))
    transformers = directory / "transformers.skops"
    model.transformers_ = load_skops(transformers, extra)
    wanted = list(model.modalities)
    if not isinstance(model.transformers_, dict) or any(
            not callable(getattr(model.transformers_.get(m), "transform", None)) for m in wanted):
        raise ModelLoadError(transformers, f"expected a fitted transformer for each of {wanted}")
    model.n_features_in_ = _positive_int(manifest_path, state, "n_features_in")
    found = getattr(_unfrozen(classifier), "n_features_in_", model.n_features_in_)
    if found != model.n_features_in_:
        raise ModelLoadError(manifest_path, f"n_features_in is {model.n_features_in_} but its "
                                            f"classifier expects {found}")
    model.classifier_ = classifier
    model.classes_ = _classes(manifest)
    return model


def _load_late(directory: Path, manifest: dict[str, Any], extra: tuple[str, ...],
               parents: tuple[Path, ...]) -> LateFusion | HybridFusion:
    """Late and hybrid fusion: members saved under members/N, combiner state in the manifest."""
    manifest_path, state, kind = directory / MANIFEST, manifest.get("state", {}), manifest["kind"]
    names = state["member_names"]
    if (not isinstance(names, list) or not names or len(set(map(str, names))) != len(names)
            or not all(isinstance(n, str) and n for n in names)):
        raise ModelLoadError(manifest_path, "'member_names' must list distinct member names")
    if kind == "hybrid" and HybridFusion.EARLY not in names:
        raise ModelLoadError(manifest_path, f"a hybrid model needs a {HybridFusion.EARLY!r} member")
    params = {k: v for k, v in manifest.get("params", {}).items() if k != "prefit"}  # old files
    try:
        params["combiner"] = _saved_combiner(params)
    except ValueError as err:
        raise ModelLoadError(manifest_path, str(err)) from None
    members = {name: FrozenEstimator(_load(directory / "members" / str(i), extra, parents))
               for i, name in enumerate(names)}
    for i, member in enumerate(members.values()):
        _check_classes(directory / "members" / str(i), manifest, member.classes_)
    if kind == "late":
        model = LateFusion(models=members, **params)
    else:
        rest = {n: m for n, m in members.items() if n != HybridFusion.EARLY}
        model = HybridFusion(early=members[HybridFusion.EARLY], models=rest, **params)
    model.members_, model.member_names_ = members, list(names)
    model.classes_ = _classes(manifest)
    model.combiner_source_ = state["combiner_source"]
    combiner = model.fresh_combiner()
    try:
        combiner.restore(state, list(names), model.classes_)
    except ValueError as err:
        raise ModelLoadError(manifest_path, str(err)) from None
    for part in combiner.parts:
        file = directory / f"{part}.skops"
        setattr(combiner, part, load_skops(file, extra))
        try:
            combiner.check_part(part, list(names), model.classes_)
        except ValueError as err:
            raise ModelLoadError(file, str(err)) from None
    model.combiner_ = combiner
    return model


#: settings every combiner was given before each declared its own (files of 0.2.0)
_SHARED_SETTINGS = ("weight_step", "meta_C", "clip")


def _saved_combiner(params: dict[str, Any]) -> Combiner:
    """The combiner prototype a late or hybrid manifest's params save (popped from them):
    ``combiner`` {id, settings}; in older files ``method`` plus the settings every combiner
    was given, of which each keeps the ones it declares."""
    saved, method = params.pop("combiner", None), params.pop("method", None)
    shared = {k: params.pop(k) for k in _SHARED_SETTINGS if k in params}
    if saved is None:
        declared = COMBINERS.get(method or "mean").setting_names()
        return make_combiner(method or "mean",
                             **{k: v for k, v in shared.items() if k in declared})
    if (not isinstance(saved, dict) or set(saved) != {"id", "settings"}
            or not isinstance(saved["id"], str) or not isinstance(saved["settings"], dict)):
        raise ValueError("params 'combiner' must be an object with an 'id' and 'settings'")
    if method is not None and method != saved["id"]:
        raise ValueError(f"params 'method' {method!r} and 'combiner' {saved['id']!r} disagree")
    return make_combiner(saved["id"], **saved["settings"])


#: Every kind of saved model: the class it holds, how it is saved and how it is loaded.
_KINDS: dict[str, tuple[type, Any, Any]] = {
    "classical": (ClassicalModel, _save_classical, _load_classical),
    "torch": (TorchModel, _save_torch, _load_torch),
    "early": (EarlyFusion, _save_early, _load_early),
    "late": (LateFusion, _save_late, _load_late),
    "hybrid": (HybridFusion, _save_late, _load_late),
}
KINDS = tuple(_KINDS)
