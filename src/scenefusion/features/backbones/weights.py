"""Finding, downloading and strictly loading a backbone's pretrained weight file.

Every failure is a named error whose message says what is wrong and what to do: which file to
put where, which keys or shapes do not match (the first few, not hundreds)."""

from __future__ import annotations

import logging
import os
import pickle
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
from torch import nn

from ...errors import WeightsLoadError, WeightsMismatchError, WeightsNotFoundError
from ..state_dict import check_state_dict, first_few
from .spec import BackboneSpec

log = logging.getLogger(__name__)


def _checkpoint_dir() -> Path:
    # torch.hub.get_dir() is where torchvision itself caches these files: $TORCH_HOME/hub, with
    # TORCH_HOME defaulting to $XDG_CACHE_HOME/torch or ~/.cache/torch. Read at call time so a
    # changed environment is honoured.
    return Path(torch.hub.get_dir()) / "checkpoints"


def _hash_prefix(weight_file: str) -> str | None:
    # torchvision file names end in the first hex digits of the file's SHA-256.
    suffix = Path(weight_file).stem.rsplit("-", 1)[-1]
    return suffix if len(suffix) >= 8 and all(c in "0123456789abcdef" for c in suffix) else None


def find_weights(
    spec: BackboneSpec, weights: Path | str | None = None, *, allow_download: bool = True,
    variants: Iterable[BackboneSpec] = (),
) -> Path:
    """Locate (or fetch) the weight file for ``spec`` and return its path.

    Order: the explicit ``weights`` path; the file a package ships; ``<torch hub
    dir>/checkpoints/<file>``; a download into that folder when ``allow_download``. Raises
    :class:`WeightsNotFoundError` saying exactly what to put where, and naming a variant id
    (``variants``: other specs of the same architecture) whose file *is* there.
    """
    w = spec.weights
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            expected = f"the official file {w.file_name}" + (f", from {w.url}" if w.url else "")
            raise WeightsNotFoundError(
                f"weights file for {spec.id!r} not found: {path} (expected {expected})"
            )
        return path
    if w.package_file is not None:
        return Path(w.package_file())

    folder = _checkpoint_dir()
    target = folder / w.file_name
    if target.is_file():
        return target
    reason = "downloading is disabled (offline mode)"
    if allow_download and w.url:
        log.info("downloading %s to %s", w.url, target)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(
                w.url, os.fspath(target), _hash_prefix(w.file_name), progress=False
            )
        except Exception as exc:  # network, disk, hash mismatch: all mean "not available"
            reason = f"download failed: {type(exc).__name__}: {exc}"
            log.warning("could not download %s: %s", w.url, reason)
        else:
            if target.is_file():
                return target
            reason = "download finished but the file is missing"
    hint = "".join(
        f"\n  ({folder / v.weights.file_name} is there: those are the weights of "
        f"{v.id!r}; use --image-backbone {v.id})"
        for v in variants if v.id != spec.id and (folder / v.weights.file_name).is_file()
    )
    raise WeightsNotFoundError(
        f"ImageNet weights for {spec.id!r} are not available ({reason}).\n"
        f"  Download {w.file_name} from {w.url}\n"
        f"  and put it in {folder}{os.sep} (i.e. {target}),\n"
        f"  or pass the file explicitly with --weights PATH.{hint}"
    )


def _check_state_dict(state: Mapping[str, object], model: nn.Module, path: Path) -> None:
    """Compare keys and shapes up front so a wrong file gets a readable error, not a traceback
    listing hundreds of keys."""
    check = check_state_dict(state, model.state_dict())
    if check.ok:
        return
    parts = []
    for label, keys in (
        ("missing keys", check.missing),
        ("unexpected keys", check.unexpected),
        ("shape mismatches", [f"{k}: file {got} vs model {want}"
                              for k, got, want in check.wrong_shape]),
        ("non-tensor values", [k for k, _ in check.not_tensor]),
    ):
        if keys:
            parts.append(f"  {label} ({len(keys)}): {first_few(keys)}")
    raise WeightsMismatchError(
        f"refusing to load {path}: it does not match the {type(model).__name__} architecture "
        f"(is it the right file, the official state_dict for this backbone?):\n" + "\n".join(parts)
    )


def load_weights(
    spec: BackboneSpec, weights: Path | str | None = None, *, allow_download: bool = True,
    variants: Iterable[BackboneSpec] = (),
) -> nn.Module:
    """Build ``spec``'s architecture and load its pretrained weights strictly; eval mode.

    See :func:`find_weights` for where the file is looked for. The path used is stored on the
    returned module as ``weights_path``.
    """
    path = find_weights(spec, weights, allow_download=allow_download, variants=variants)
    expected = f"the official file {spec.weights.file_name}" + (
        f" from {spec.weights.url}" if spec.weights.url else "")
    model = spec.builder()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        # torch's own message is a page of advice about weights_only, not about the file
        reason = ("not a PyTorch weight file, or one holding more than tensors (not loaded: "
                  "that could run code)" if isinstance(exc, pickle.UnpicklingError)
                  else "the file is empty or cut short" if isinstance(exc, EOFError)
                  else f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}")
        raise WeightsLoadError(
            f"refusing to load {path}: not readable as a torch state_dict ({reason}); expected "
            f"{expected}"
        ) from exc
    if isinstance(state, Mapping) and not isinstance(state, dict):
        state = dict(state)
    if not isinstance(state, dict):
        raise WeightsLoadError(
            f"refusing to load {path}: it holds a {type(state).__name__}, not a state_dict; "
            f"expected {expected}"
        )
    _check_state_dict(state, model, path)
    # Old checkpoints may lack BatchNorm's num_batches_tracked; it does not affect inference.
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = value
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # e.g. dtype problems the pre-check cannot see
        raise WeightsMismatchError(
            f"refusing to load {path}: it does not load into {spec.id}: {exc}") from exc
    model.weights_path = path
    log.info("loaded %s weights from %s", spec.id, path)
    return model.eval()
