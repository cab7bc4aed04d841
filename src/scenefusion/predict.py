"""Classify new image/audio pairs with a saved run's model bundle.

A bundle (`RUN_DIR/best`) holds the model and the recipe for its inputs (class names, image
backbone, audio features). A pair may lack one modality: late and hybrid models fall back to the
other and say so; models that need the missing one report an error for that row.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from .data.datasets import leaving_path
from .data.validate import AUDIO_SUFFIXES, IMAGE_SUFFIXES, DataError, open_image_rgb
from .evaluation.calibration import OVERCONFIDENT, apply_temperature, near_tie
from .features import DEFAULT_BATCH_SIZE
from .features.audio import AudioFeature
from .features.backbones import IMAGE_BACKBONES
from .features.image import ImageExtractor
from .models import load_model
from .models.bundle_files import BUNDLE_FILE, NEEDS, read_bundle_info
from .models.bundle_files import save_bundle as save_bundle  # part of predict's API
from .models.bundle_schema import bundle_audio_feature
from .models.persistence import ModelLoadError

log = logging.getLogger(__name__)



@dataclass
class Bundle:
    directory: Path
    info: dict[str, Any]
    model: Any
    #: where the image backbone runs (``auto | cpu | cuda``, see :mod:`.features.device`)
    device: str = "auto"
    _fallbacks: dict[str, Bundle | None] = field(default_factory=dict, repr=False)

    @property
    def classes(self) -> list[str]:
        return list(self.info["classes"])

    @property
    def kind(self) -> str:
        return self.info["kind"]

    @functools.cached_property
    def audio_feature(self) -> AudioFeature:
        """What this model hears: the audio feature its bundle names, resolved once."""
        return bundle_audio_feature(self.info.get("audio_features"))

    @functools.cached_property
    def image_extractor(self) -> ImageExtractor:
        """Built once per bundle: a server answering many requests must not reload the
        backbone and its ONNX session each time (~200 ms of a ~230 ms request, measured)."""
        weights = self.info.get("image_weights")
        return ImageExtractor(self.info["image_backbone"], Path(weights) if weights else None,
                              precision=self.info.get("image_precision", "fp32"),
                              device=self.device)

    def prepare(self) -> Bundle:
        """Load now what predictions will need (the image backbone with its weights, by
        embedding one blank image), so that a broken weight file is reported when the model
        is loaded, not at the first request."""
        if self.kind != "audio":
            size = self.image_extractor.spec.input_size
            self.image_extractor.embed(torch.zeros(1, 3, size, size))
        return self

    @property
    def temperature(self) -> float:
        """The calibration temperature fitted when the run saved this model (1: none)."""
        calibration = self.info.get("calibration") or {}
        return float(calibration.get("temperature", 1.0))

    def provenance_warning(self) -> str:
        """What a user must know before trusting this model's answers ("" when nothing)."""
        trained_on = self.info.get("trained_on") or {}
        warnings = []
        if trained_on.get("synthetic"):
            warnings.append(
                f"model {self.info['name']} was trained on SYNTHETIC demo data "
                f"({trained_on.get('data_path')}): its answers for real photos and sounds "
                "mean nothing; train on real data with `scenefusion run --data PATH`")
        calibration = self.info.get("calibration") or {}
        confidence = calibration.get("held_out_confidence")
        accuracy = calibration.get("held_out_accuracy")
        if confidence is not None and accuracy is not None and (
                confidence - accuracy > OVERCONFIDENT):
            warnings.append(
                f"on recordings held out from its training, model {self.info['name']} was "
                f"{confidence:.0%} sure on average but right {accuracy:.0%} of the time: its "
                "probabilities overstate how sure it is on places it has not heard or seen")
        return "; ".join(warnings)

    def required(self) -> set[str]:
        """Modalities every prediction needs (late/hybrid need at least one of the two)."""
        return NEEDS.get(self.kind, set())

    def fallback(self, modality: str) -> Bundle | None:
        """The best single-modality model a run saved beside this one (``best-image/``,
        ``best-audio/``), for pairs that have only ``modality``; None when there is none."""
        if modality not in self._fallbacks:
            folder = self.directory.parent / f"best-{modality}"
            found = (folder / BUNDLE_FILE).is_file() and folder != self.directory
            self._fallbacks[modality] = load_bundle(folder, self.device) if found else None
        return self._fallbacks[modality]


def load_bundle(path: Path, device: str = "auto") -> Bundle:
    """Load `RUN_DIR/best` (or a run folder, whose `best/` is used); its image backbone will
    run on ``device``."""
    path = Path(path)
    if (path / "best" / BUNDLE_FILE).is_file():
        path = path / "best"
    if not (path / BUNDLE_FILE).is_file():
        raise DataError(path, f"not a model bundle (no {BUNDLE_FILE}); pass RUN_DIR/best")
    info = read_bundle_info(path / BUNDLE_FILE)
    model = load_model(path / "model")
    family = _model_family(model)
    expected = "single" if info["kind"] in ("image", "audio") else info["kind"]
    if family != expected:
        what = "a single-modality model" if family == "single" else f"a {family}-fusion model"
        raise ModelLoadError(path / BUNDLE_FILE, f"'kind' is {info['kind']!r} but the saved "
                             f"model is {what}")
    dim = IMAGE_BACKBONES.get(info["image_backbone"]).embedding_dim \
        if info["kind"] == "image" else None
    if dim is not None and getattr(model, "n_features_in_", dim) != dim:
        raise ModelLoadError(path / BUNDLE_FILE, f"the model takes {model.n_features_in_} "
                             f"features, but {info['image_backbone']} embeds images as {dim}")
    n_model = len(getattr(model, "classes_", info["classes"]))
    if n_model != len(info["classes"]):
        raise ModelLoadError(path / BUNDLE_FILE, f"lists {len(info['classes'])} class names but "
                             f"the model predicts {n_model} classes")
    return Bundle(path, info, model, device)


def _model_family(model: Any) -> str:
    """``early``, ``late`` or ``hybrid`` for a fusion model, ``single`` for one modality's."""
    from .models import EarlyFusion, HybridFusion, LateFusion

    for family, cls in (("early", EarlyFusion), ("hybrid", HybridFusion), ("late", LateFusion)):
        if isinstance(model, cls):
            return family
    return "single"


def _embed_images(bundle: Bundle, paths: dict[int, Path], problems: list[list[str]],
                  batch_size: int = DEFAULT_BATCH_SIZE) -> dict[int, np.ndarray]:
    """Embeddings by row; an unreadable image is noted in its row instead of failing all."""
    extractor = bundle.image_extractor
    tensors: dict[int, torch.Tensor] = {}
    for i, path in paths.items():
        try:
            tensors[i] = extractor.preprocess(open_image_rgb(Path(path)))
        except DataError as err:
            problems[i].append(str(err))
    out: dict[int, np.ndarray] = {}
    keys = list(tensors)
    for start in range(0, len(keys), batch_size):
        chunk = keys[start : start + batch_size]
        emb = extractor.embed(torch.stack([tensors[i] for i in chunk]))
        out.update(zip(chunk, emb, strict=True))
    return out


@dataclass
class Prediction:
    """One classified pair (or the reason it could not be): what the CLI, the server and the
    CSV writer read, as typed fields, so nobody parses joined strings back apart."""

    image: Path | None
    audio: Path | None
    predicted: str | None = None
    probability: float | None = None
    top_k: list[tuple[str, float]] = field(default_factory=list)
    probabilities: dict[str, float] = field(default_factory=dict)
    modalities: list[str] = field(default_factory=list)
    model: str | None = None
    warnings: list[str] = field(default_factory=list)
    error: str = ""
    #: classified by the run's single-modality model because this pair lacked a modality
    fallback: bool = False
    #: a late / hybrid model's members: {member: {"weight", "probability" (its own, of the
    #: predicted class), "contribution" (weight x probability)}}; empty for other models
    members: dict[str, dict[str, float]] = field(default_factory=dict)

    def csv_row(self) -> dict[str, Any]:
        """The row as text columns (``top_k``: ``"CLASS p; ..."``, ``modalities``:
        ``"image+audio"``, ``warning``: joined by ``"; "``)."""
        done = self.predicted is not None
        return {"image": str(self.image) if self.image else "",
                "audio": str(self.audio) if self.audio else "",
                "predicted": self.predicted, "probability": self.probability,
                "top_k": "; ".join(f"{c} {p:.3f}" for c, p in self.top_k) if done else None,
                "modalities": "+".join(self.modalities) if done else None,
                "model": self.model, "warning": "; ".join(self.warnings), "error": self.error,
                "contributions": "; ".join(f"{m} {v['contribution']:.3f}"
                                           for m, v in self.members.items()),
                "probabilities": self.probabilities if done else None}


PREDICTION_COLUMNS = ["image", "audio", "predicted", "probability", "top_k", "modalities",
                      "model", "contributions", "warning", "error"]


def predictions_frame(rows: list[Prediction], with_probabilities: bool = False) -> pd.DataFrame:
    """Predictions as the CSV table ``predict --pairs`` writes (plus ``probabilities``:
    {class: probability}, unrounded, when asked)."""
    frame = pd.DataFrame([r.csv_row() for r in rows],
                         columns=[*PREDICTION_COLUMNS, "probabilities"])
    return frame[PREDICTION_COLUMNS + (["probabilities"] if with_probabilities else [])]


def predict_pairs(
    bundle: Bundle,
    images: list[Path | None],
    audios: list[Path | None],
    top_k: int = 3,
    with_probabilities: bool = False,
) -> pd.DataFrame:
    """:func:`predict_rows` as a table (see :func:`predictions_frame`)."""
    return predictions_frame(predict_rows(bundle, images, audios, top_k), with_probabilities)


def member_contributions(model: Any, arrays: dict[str, np.ndarray], chosen: np.ndarray
                         ) -> dict[str, list[dict[str, float]]]:
    """Per member of a late / hybrid model, per row: its weight in the fusion, its own
    probability of the chosen class and their product (how much it pushed toward the answer).
    Empty for a model that is not such a fusion."""
    if not hasattr(model, "member_probabilities"):
        return {}
    weights = model.member_weights()
    probas = model.member_probabilities({m: arrays.get(m) for m in ("image", "audio")})
    rows = np.arange(len(chosen))
    return {name: [{"weight": weights[name], "probability": round(float(p), 4),
                    "contribution": round(float(weights[name] * p), 4)}
                   for p in proba[rows, chosen]]
            for name, proba in probas.items()}


def predict_rows(
    bundle: Bundle,
    images: list[Path | None],
    audios: list[Path | None],
    top_k: int = 3,
) -> list[Prediction]:
    """One :class:`Prediction` per pair: predicted class, top-k probabilities, modalities and
    model used, any warnings, or the error.

    A pair that lacks (or has an unreadable) modality this model needs is classified by the
    best single-modality model of the same run (``best-image/`` / ``best-audio/`` beside this
    bundle) when there is one; ``model``, ``fallback`` and ``warnings`` say so.
    """
    if len(images) != len(audios):
        raise ValueError("images and audios must be lists of the same length")
    n = len(images)
    if bundle.info.get("audio_source") == "reference-csv-mfcc" and any(audios):
        log.warning("this model learned from the reference CSV's precomputed MFCCs; MFCCs from "
                    "raw audio match their shape but may differ in scale")
    rows = [Prediction(Path(i) if i else None, Path(a) if a else None)
            for i, a in zip(images, audios, strict=True)]
    problems: list[list[str]] = [[] for _ in range(n)]
    feats: dict[str, dict[int, np.ndarray]] = {"image": {}, "audio": {}}
    tried = {"image": {"image"}, "audio": {"audio"}}.get(bundle.kind, {"image", "audio"})
    if bundle.kind != "audio":
        wanted = {i: Path(p) for i, p in enumerate(images) if p is not None}
        feats["image"] = _embed_images(bundle, wanted, problems)
    feature = bundle.audio_feature
    for i, path in enumerate(audios):
        if path is not None and bundle.kind != "image":
            try:
                feats["audio"][i] = feature(Path(path))
            except DataError as err:
                problems[i].append(str(err))
    patterns: dict[tuple[str, ...], list[int]] = {}
    fallback_rows: dict[str, list[int]] = {}
    for i in range(n):
        have = tuple(m for m in ("image", "audio") if i in feats[m])
        missing = bundle.required() - set(have)
        if missing or not have:
            need = ", ".join(sorted(missing)) if missing else "an image or an audio file"
            reason = f"model {bundle.info['name']} needs {need}"
            # what the pair offers: decoded here, or given but not this model's input
            given = {"image": images[i] is not None, "audio": audios[i] is not None}
            usable = [m for m in ("image", "audio")
                      if i in feats[m] or (given[m] and m not in tried)]
            if len(usable) == 1 and bundle.fallback(usable[0]) is not None:
                rows[i].warnings = [*problems[i], reason]
                fallback_rows.setdefault(usable[0], []).append(i)
            else:
                rows[i].error = "; ".join(problems[i]) or reason
            continue
        rows[i].warnings = list(problems[i])
        patterns.setdefault(have, []).append(i)
    classes = np.array(bundle.classes)
    for have, idx in patterns.items():
        arrays = {m: np.stack([feats[m][i] for i in idx]) for m in have}
        if bundle.kind in ("image", "audio"):
            proba = bundle.model.predict_proba(arrays[bundle.kind])
            used = (bundle.kind,)
        else:
            proba = bundle.model.predict_proba({m: arrays.get(m) for m in ("image", "audio")})
            used = tuple(getattr(bundle.model, "last_used_modalities_", have))
        proba = apply_temperature(proba, bundle.temperature)
        order = np.argsort(-proba, axis=1)[:, :top_k]
        members = member_contributions(bundle.model, arrays, proba.argmax(axis=1))
        for row_i, i in enumerate(idx):
            top, row = order[row_i], rows[i]
            tie = near_tie(proba[row_i], bundle.classes)
            if tie:
                row.warnings.append(tie)
            row.predicted = str(classes[top[0]])
            row.probability = float(proba[row_i, top[0]])
            row.top_k = [(str(classes[t]), float(proba[row_i, t])) for t in top]
            row.probabilities = dict(zip(bundle.classes, map(float, proba[row_i]), strict=True))
            row.modalities = list(used)
            row.model = bundle.info["name"]
            row.members = {m: by_row[row_i] for m, by_row in members.items()}
    for modality, idx in fallback_rows.items():
        only = [(images[i] if modality == "image" else None,
                 audios[i] if modality == "audio" else None) for i in idx]
        sub = predict_rows(bundle.fallback(modality), [p[0] for p in only],
                           [p[1] for p in only], top_k=top_k)
        for i, result in zip(idx, sub, strict=True):
            row = rows[i]
            for name in ("predicted", "probability", "top_k", "probabilities", "modalities",
                         "model", "error"):
                setattr(row, name, getattr(result, name))
            row.fallback = not result.error
            row.warnings = [*row.warnings, f"used {result.model}", *result.warnings]
    return rows


def read_pairs(path: Path, allow_outside: bool = False
               ) -> tuple[list[Path | None], list[Path | None]]:
    """Image and audio paths of many pairs: a CSV manifest or a folder matched by file name.

    A manifest path that leaves the manifest's folder is refused, as in training data sets,
    unless `allow_outside`."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        return pairs_in_manifest(path, allow_outside=allow_outside)
    return pairs_in_folder(path)


def pairs_in_folder(folder: Path) -> tuple[list[Path | None], list[Path | None]]:
    """Pair files by stem anywhere under `folder`; a lone image or sound is a one-modality pair."""
    found: dict[Path, dict[str, Path]] = {}
    for f in sorted(Path(folder).rglob("*")):
        suffix = f.suffix.lower()
        kind = ("image" if suffix in IMAGE_SUFFIXES
                else "audio" if suffix in AUDIO_SUFFIXES else None)
        if kind and f.is_file():
            found.setdefault(f.with_suffix(""), {})[kind] = f
    if not found:
        raise DataError(folder, "no image or audio files found")
    pairs = list(found.values())
    return [p.get("image") for p in pairs], [p.get("audio") for p in pairs]


def pairs_in_manifest(csv_path: Path, allow_outside: bool = False
                      ) -> tuple[list[Path | None], list[Path | None]]:
    """Read `image` and/or `audio` columns of a CSV, paths relative to it (none may leave its
    folder unless `allow_outside`: a DataError names the first row that does)."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise DataError(csv_path, "CSV file not found")
    try:
        frame = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(csv_path, f"not a readable CSV ({exc})") from None
    if frame.empty:
        raise DataError(csv_path, "the CSV has a header but no rows")
    if "image" not in frame and "audio" not in frame:
        raise DataError(csv_path, "needs an 'image' and/or an 'audio' column")

    def cell(name: str, value: object) -> str | None:
        return value.strip() if name in frame and isinstance(value, str) and value.strip() \
            else None

    images, audios = [], []
    for n, rec in enumerate(frame.to_dict("records"), start=2):  # row 1 is the header
        row = {k: cell(k, rec.get(k)) for k in ("image", "audio")}
        leaving = None if allow_outside else leaving_path(
            {k: v for k, v in row.items() if v}, csv_path.parent, "manifest folder")
        if leaving:
            raise DataError(f"{csv_path}:{n}", leaving)
        images.append(csv_path.parent / row["image"] if row["image"] else None)
        audios.append(csv_path.parent / row["audio"] if row["audio"] else None)
    return images, audios
