"""The FastAPI app behind `scenefusion serve`: a JSON API and one offline HTML page.

The app only parses uploads and renders results; every prediction goes through
:func:`scenefusion.predict.predict_rows` / :func:`~scenefusion.timeline.predict_video`. Safety:
uploads are capped (413) before they are parsed, saved under server-chosen names in a temporary
folder that is always removed (no client path is ever opened), checked with the library's
readers (422 naming the file and the problem), and predicted one request at a time under a lock
(fusion models record what they used on the model object, so two requests at once would race).
The work one request does under the lock is bounded by sound and video lengths found by
decoding (a header can state any length), checked before the lock is taken: so a slow request
delays the others by at most one bounded prediction.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import tempfile
import threading
from collections import Counter
from dataclasses import dataclass
from importlib import resources
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Annotated, Any

from fastapi import FastAPI, File, Form, HTTPException, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse

from ..data.validate import (
    AUDIO_SUFFIXES,
    IMAGE_SUFFIXES,
    DataError,
    check_audio,
    check_image,
    decoded_audio_seconds,
)
from ..data.video import VIDEO_SUFFIXES, sound_seconds, stated_seconds
from ..explain import explain_image
from ..predict import Bundle, load_bundle, predict_rows
from ..timeline import (
    NothingClassified,
    decisive_seconds,
    predict_audio_windows,
    predict_video,
    video_verdict,
)
from .schemas import Health, Prediction

DEFAULT_MAX_UPLOAD_MB = 50.0
DEFAULT_MAX_VIDEO_SECONDS = 120.0
#: Longest sound accepted: like a video's seconds, its windows are predicted under the lock
#: (30 s held it 9.6 s with aisfx_birdnet on a loaded 2-core AMD EPYC; 120 s held it 70 s).
DEFAULT_MAX_AUDIO_SECONDS = 30.0
#: Seconds a decoded length may run over a limit: codecs pad a track's ends (AAC by ~0.02 s).
LENGTH_SLACK = 0.5
MAX_TOP_K = 50
#: Longest smoothing window a client may ask for, in seconds: a longer one would blur every
#: change of scene in the videos this server accepts (the verdict already averages them all).
MAX_SMOOTH_SECONDS = 60

#: Accepted file-name suffixes and the content types browsers and curl send for them.
ACCEPTED: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    "image": (IMAGE_SUFFIXES, {"image/jpeg": ".jpg", "image/png": ".png", "image/bmp": ".bmp",
                               "image/x-ms-bmp": ".bmp", "image/webp": ".webp"}),
    "audio": (AUDIO_SUFFIXES, {"audio/wav": ".wav", "audio/x-wav": ".wav", "audio/wave": ".wav",
                               "audio/vnd.wave": ".wav", "audio/flac": ".flac",
                               "audio/x-flac": ".flac", "audio/ogg": ".ogg"}),
    "video": (VIDEO_SUFFIXES, {"video/mp4": ".mp4", "video/quicktime": ".mov",
                               "video/x-matroska": ".mkv", "video/webm": ".webm",
                               "video/x-msvideo": ".avi", "video/x-m4v": ".m4v"}),
}

#: The page loads nothing from anywhere: scripts and styles are inline, media are local blobs.
PAGE_CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
            "img-src blob: data:; media-src blob:; connect-src 'self'; base-uri 'none'; "
            "form-action 'none'")


# --- helpers -----------------------------------------------------------------------------------

@dataclass
class _Served:
    """What the app holds for its lifetime: the bundle and its fallbacks, loaded once."""

    bundle: Bundle
    singles: dict[str, Bundle | None]
    lock: threading.Lock
    max_upload_mb: float
    max_video_seconds: float
    max_audio_seconds: float


def _fail(status: int, message: str) -> HTTPException:
    return HTTPException(status_code=status, detail=message)


def _display_name(filename: str | None) -> str:
    """The client's file name, for messages only (never opened): last path part, short."""
    name = PureWindowsPath(PurePosixPath(filename or "upload").name).name
    return name[:120] or "upload"


def _suffix_for(upload: UploadFile, modality: str) -> str:
    """The suffix the saved copy gets, from the client's suffix or content type; 415 when
    neither says this is an image / audio / video file we read."""
    suffixes, types = ACCEPTED[modality]
    suffix = PurePosixPath(_display_name(upload.filename)).suffix.lower()
    if suffix in suffixes:
        return suffix
    content_type = (upload.content_type or "").split(";")[0].strip().lower()
    if content_type in types:
        return types[content_type]
    sent = content_type or "no content type"
    raise _fail(415, f"{modality}: {_display_name(upload.filename)!r} ({sent}) is not a "
                     f"supported {modality} file; send one of {', '.join(suffixes)}")


def _save(upload: UploadFile, modality: str, folder: Path) -> Path:
    """Copy an upload to FOLDER/<modality><suffix>: a name the server chose."""
    dest = folder / f"{modality}{_suffix_for(upload, modality)}"
    with dest.open("wb") as fh:
        shutil.copyfileobj(upload.file, fh, 1 << 20)
    if dest.stat().st_size == 0:
        raise _fail(422, f"{modality}: {_display_name(upload.filename)!r} is empty (0 bytes)")
    return dest


def _present(upload: UploadFile | None) -> UploadFile | None:
    """An empty file field (a form submitted without a file) counts as absent."""
    return upload if upload is not None and upload.filename else None


def _user_text(text: str, names: dict[Path, str]) -> str:
    """A library message with the server's temporary paths replaced by the client's names."""
    for path, name in names.items():
        text = text.replace(str(path), name)
    tmp = re.escape(tempfile.gettempdir().rstrip("/"))
    return re.sub(rf"{tmp}/[^\s:;]*/([^/\s:;]+)", r"\1", text)


def ranked(probabilities: dict[str, float]) -> list[dict[str, Any]]:
    """{class: probability} as [{class, probability}], most probable first."""
    return [{"class": c, "probability": p}
            for c, p in sorted(probabilities.items(), key=lambda kv: -kv[1])]


def _single(bundle: Bundle, modality: str) -> Bundle | None:
    """The model that answers from MODALITY alone: the bundle itself or its run's best-<m>/."""
    return bundle if bundle.kind == modality else bundle.fallback(modality)


def _check_video_length(path: Path, limit: float) -> None:
    """422 for a video whose sound, decoded (never its header), runs past ``limit``."""
    if importlib.util.find_spec("av") is None:
        raise _fail(501, "this server cannot read videos: install PyAV "
                         "(pip install 'scenefusion[video]')")
    if sound_seconds(path, limit + LENGTH_SLACK) > limit + LENGTH_SLACK:
        stated = stated_seconds(path)
        length = f"{stated:.0f} s long" if stated > limit else f"longer than {limit:g} s"
        raise DataError(path, f"video is {length}; this server accepts at most {limit:g} s "
                              "(scenefusion serve --max-video-seconds)")


def _check_audio_length(path: Path, limit: float) -> None:
    """422 for a sound whose decoded samples run past ``limit`` seconds."""
    if decoded_audio_seconds(path, limit + LENGTH_SLACK) > limit + LENGTH_SLACK:
        raise DataError(path, f"sound is longer than {limit:g} s; this server accepts at most "
                              f"{limit:g} s (scenefusion serve --max-audio-seconds)")


# --- prediction (under the lock) ---------------------------------------------------------------

def _predict_pair(served: _Served, image: Path | None, audio: Path | None,
                  top_k: int) -> dict[str, Any]:
    bundle = served.bundle
    row = predict_rows(bundle, [image], [audio])[0]
    if row.error:
        raise _fail(422, row.error)
    probs = ranked(row.probabilities)
    used = row.modalities
    per = {"fused" if len(used) > 1 else used[0]: {"model": row.model, "probabilities": probs}}
    for modality, path in (("image", image), ("audio", audio)):
        single = served.singles.get(modality)
        if path is None or modality in per or single is None:
            continue
        alone = predict_rows(single, [path if modality == "image" else None],
                             [path if modality == "audio" else None])[0]
        if not alone.error:
            per[modality] = {"model": alone.model, "probabilities": ranked(alone.probabilities)}
    result = {"class": row.predicted, "probability": row.probability, "top_k": probs[:top_k],
              "per_modality": per, "modalities": used, "model": row.model,
              "members": row.members, "warnings": row.warnings}
    if audio is not None:  # a sound longer than the model's window: which parts decided
        windows, seconds = predict_audio_windows(bundle, audio)
        if any(not w.error for w in windows):
            result["audio_window_seconds"] = seconds
            result["decisive_seconds"] = decisive_seconds(windows, row.predicted,
                                                          seconds_per_row=seconds)
    return result


def _predict_video(served: _Served, video: Path, top_k: int, smooth: int) -> dict[str, Any]:
    bundle = served.bundle
    rows = predict_video(bundle, video, smooth=smooth, max_seconds=served.max_video_seconds)
    try:
        best, totals, _ = video_verdict(rows)
    except NothingClassified as err:
        raise _fail(422, f"{err}: {rows[0].error if rows else 'no second'}") from None
    good = [r for r in rows if not r.error]
    totals = dict.fromkeys(bundle.classes, 0.0) | totals
    mean = [{"class": c, "probability": round(p, 4)}
            for c, p in sorted(totals.items(), key=lambda kv: -kv[1])]
    used = list(Counter(tuple(r.modalities) for r in good).most_common(1)[0][0])
    timeline = [{"second": second, "class": r.predicted,
                 "probability": None if r.error else r.probability,
                 "modalities": "+".join(r.modalities) or None, "warning": "; ".join(r.warnings),
                 "error": r.error} for second, r in enumerate(rows)]
    warnings = sorted({w for r in rows for w in r.warnings})
    if len(good) < len(rows):
        warnings.append(f"{len(rows) - len(good)} of {len(rows)} seconds could not be "
                        "classified (see timeline)")
    return {"class": best, "probability": totals[best], "top_k": mean[:top_k],
            "per_modality": {"fused" if len(used) > 1 else used[0]:
                             {"model": bundle.info["name"], "probabilities": mean}},
            "modalities": used, "model": bundle.info["name"], "warnings": warnings,
            "timeline": timeline, "decisive_seconds": decisive_seconds(rows, best)}


# --- upload size limit -------------------------------------------------------------------------

class UploadLimit:
    """Refuse request bodies over the limit with 413 before they are parsed or spooled: by
    Content-Length when given, else by counting the bytes as they arrive."""

    def __init__(self, app: Any, max_mb: float) -> None:
        self.app = app
        self.max_bytes = int(max_mb * 2**20)
        self.message = (f"upload too large: this server accepts at most {max_mb:g} MB per "
                        "request (scenefusion serve --max-upload-mb)")

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_bytes:
            await JSONResponse({"detail": self.message}, status_code=413)(scope, receive, send)
            return
        seen = 0

        async def counted() -> dict:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:  # FastAPI passes HTTPException through body parsing
                raise HTTPException(status_code=413, detail=self.message)
            return message

        await self.app(scope, counted, send)


# --- the app -----------------------------------------------------------------------------------

def _model_info(served: _Served) -> dict[str, Any]:
    info = served.bundle.info
    trained_on = info.get("trained_on") or {}
    warning = served.bundle.provenance_warning()
    return {
        "name": info["name"], "kind": info["kind"], "classes": served.bundle.classes,
        "image_backbone": info.get("image_backbone") if info["kind"] != "audio" else None,
        "audio_features": info.get("audio_features") if info["kind"] != "image" else None,
        "trained_on": trained_on, "synthetic": bool(trained_on.get("synthetic")),
        "test_accuracy": info.get("test_accuracy"),
        "test_accuracy_ci": info.get("test_accuracy_ci"), "n_test": info.get("n_test"),
        "calibration": info.get("calibration"),
        "single_modality_models": {m: b.info["name"] if b else None
                                   for m, b in served.singles.items()},
        "limits": {"max_upload_mb": served.max_upload_mb,
                   "max_video_seconds": served.max_video_seconds,
                   "max_audio_seconds": served.max_audio_seconds},
        "warnings": [warning] if warning else [],
    }


def create_app(bundle_dir: Path | str, max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
               max_video_seconds: float = DEFAULT_MAX_VIDEO_SECONDS, device: str = "auto",
               max_audio_seconds: float = DEFAULT_MAX_AUDIO_SECONDS) -> FastAPI:
    """The app over the bundle at BUNDLE_DIR (``RUN_DIR/best`` or a run folder), loaded once
    here with its run's single-modality fallbacks, its backbone on ``device``; raises a
    ScenefusionError (DataError, ModelLoadError, WeightsLoadError, ...) for a bad one."""
    bundle = load_bundle(Path(bundle_dir), device).prepare()  # a broken weight file fails here
    singles = {m: _single(bundle, m) for m in ("image", "audio")}
    for single in singles.values():
        if single is not None:
            single.prepare()
    served = _Served(bundle, singles, threading.Lock(), float(max_upload_mb),
                     float(max_video_seconds), float(max_audio_seconds))
    page = resources.files(__package__).joinpath("page.html").read_text(encoding="utf-8")
    api = FastAPI(title="scenefusion", version="1",
                  description=f"Scene classification with model {bundle.info['name']}.")
    api.state.bundle = bundle
    api.add_middleware(UploadLimit, max_mb=max_upload_mb)

    @api.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> HTMLResponse:
        return HTMLResponse(page, headers={"Content-Security-Policy": PAGE_CSP})

    @api.get("/health")
    def health() -> Health:
        return Health(status="ok", model=bundle.info["name"])

    @api.get("/model")
    def model() -> dict[str, Any]:
        """Classes, inputs, how the model was trained (synthetic or not) and how well it did."""
        return _model_info(served)

    @api.post("/predict", response_model=Prediction, response_model_by_alias=True,
              responses={413: {"description": "upload too large"},
                         415: {"description": "not an image / audio / video file"},
                         422: {"description": "unreadable file, missing input, video or sound "
                                              "too long"}})
    def predict(
        image: Annotated[UploadFile | None, File(description="An image (jpg, png, ...).")] = None,
        audio: Annotated[UploadFile | None, File(description="Its sound (wav, flac, ogg).")]
        = None,
        video: Annotated[UploadFile | None, File(description="Or a video, classified second by "
                                                             "second.")] = None,
        top_k: Annotated[int, Form(ge=1, le=MAX_TOP_K)] = 3,
        smooth: Annotated[int, Form(ge=1, le=MAX_SMOOTH_SECONDS,
                                    description="A video: average each second's probabilities "
                                                "over this many seconds around it (1 = off).")]
        = 1,
        explain: Annotated[bool, Form(description="An image: add a saliency map of the image "
                                                  "model for the answer ('saliency').")] = False,
    ) -> dict[str, Any]:
        """Classify an image and/or its audio, or a video (multipart form upload)."""
        image, audio, video = _present(image), _present(audio), _present(video)
        if video is not None and (image or audio):
            raise _fail(422, "send a video, or an image and/or an audio file, not both")
        if not (image or audio or video):
            raise _fail(422, "send an image and/or an audio file, or a video")
        with tempfile.TemporaryDirectory(prefix="scenefusion-serve-") as tmp:
            uploads = {"image": image, "audio": audio, "video": video}
            saved = {m: _save(u, m, Path(tmp)) for m, u in uploads.items() if u is not None}
            names = {saved[m]: _display_name(uploads[m].filename) for m in saved}
            try:
                result = _checked_predict(served, saved, top_k, smooth)
                if explain and "image" in saved:
                    with served.lock:
                        found = explain_image(served.bundle, saved["image"], result["class"])
                    result["saliency"] = None if found is None else found.as_dict()
            except (DataError, HTTPException) as err:
                detail = err.detail if isinstance(err, HTTPException) else str(err)
                status = err.status_code if isinstance(err, HTTPException) else 422
                raise _fail(status, _user_text(str(detail), names)) from None
        result["warnings"] = [_user_text(w, names) for w in result["warnings"]]
        for second in result.get("timeline") or []:
            second["warning"] = _user_text(second["warning"], names)
            second["error"] = _user_text(second["error"], names)
        warning = bundle.provenance_warning()
        result["warnings"] += [warning] if warning else []
        return result

    return api


def _checked_predict(served: _Served, saved: dict[str, Path], top_k: int,
                     smooth: int = 1) -> dict[str, Any]:
    """Check each saved file with the library's readers and its length by decoding (outside
    the lock), then predict; the video is decoded no further than its limit under the lock
    too."""
    if "video" in saved:
        _check_video_length(saved["video"], served.max_video_seconds)
        with served.lock:
            return _predict_video(served, saved["video"], top_k, smooth)
    if "image" in saved:
        check_image(saved["image"])
    if "audio" in saved:
        _check_audio_length(saved["audio"], served.max_audio_seconds)
        check_audio(saved["audio"])
    with served.lock:
        return _predict_pair(served, saved.get("image"), saved.get("audio"), top_k)
