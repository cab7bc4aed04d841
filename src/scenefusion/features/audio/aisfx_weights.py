"""Finding, reading and checking the aiSFX checkpoint.

The checkpoint comes from the PyPI package (``pip install --no-deps aisfx==0.1.2``; the package
is never imported) or from a copy named by ``$SCENEFUSION_AISFX_WEIGHTS``.

Trust note: the checkpoint is a pickle. It is read with ``torch.load(weights_only=True)`` and an
allow-list of exactly the three numpy globals that the official file needs
(:data:`ALLOWED_GLOBALS`); a file naming any other global is refused before it is unpickled,
so loading it cannot run code. Imports torch only when a file is read.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ...errors import (
    UntrustedWeightsError,
    WeightsLoadError,
    WeightsMismatchError,
    WeightsNotFoundError,
)
from ...files import file_sha256
from ..state_dict import check_state_dict, first_few
from .aisfx_net import build_embedding_net

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

#: Names a copy of aiSFX's ``models/checkpoint.pth`` (used before the installed package's).
ENV_WEIGHTS = "SCENEFUSION_AISFX_WEIGHTS"
INSTALL_COMMAND = "pip install --no-deps aisfx==0.1.2"
#: SHA-256 of ``aisfx/models/checkpoint.pth`` in aisfx 0.1.2 (the weights the cache key names).
OFFICIAL_SHA256 = "499ea75909c932a2f94c35fa722fa4fabc5bcb7e84917209cc5f7402627b7eb5"
#: The pickle globals the official checkpoint needs beyond plain tensors and containers: its
#: ``ds_dict`` holds numpy int64 scalars (``numpy.core.multiarray.scalar`` of an
#: ``np.dtype("int64")``, whose pickled state is set on an ``Int64DType`` instance). The same
#: file re-saved with ``torch.save`` under numpy 2 names the scalar ``numpy._core...``: that one
#: name is allowed too. Any other global (or another dtype, e.g. float64 scalars) makes the file
#: refused unread.
ALLOWED_GLOBALS = ("numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar", "numpy.dtype",
                   "numpy.dtypes.Int64DType")


def _packaged_checkpoint() -> Path | None:
    """``models/checkpoint.pth`` beside the installed aisfx package, found without importing it
    (its ``__init__`` would import its pinned dependencies)."""
    try:
        spec = importlib.util.find_spec("aisfx")
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.origin and spec.origin not in ("namespace", "built-in"):
        folder = Path(spec.origin).parent
    elif spec.submodule_search_locations:
        folder = Path(next(iter(spec.submodule_search_locations)))
    else:
        return None
    return folder / "models" / "checkpoint.pth"


def find_aisfx_checkpoint(explicit: Path | str | None = None) -> Path:
    """The aiSFX checkpoint to use: ``explicit``, else ``$SCENEFUSION_AISFX_WEIGHTS``, else the
    installed aisfx package's file. Raises ``WeightsNotFoundError`` (a FileNotFoundError)
    saying how to get it."""
    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise WeightsNotFoundError(
                f"aiSFX weights file not found: {path} (expected a copy of models/checkpoint.pth "
                f"from the aisfx package; install it with: {INSTALL_COMMAND})")
        return path
    named = os.environ.get(ENV_WEIGHTS)
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise WeightsNotFoundError(
                f"${ENV_WEIGHTS} names {path}, which is not a file: point it at a copy of "
                f"the aisfx package's models/checkpoint.pth, or unset it and run: "
                f"{INSTALL_COMMAND}")
        return path
    packaged = _packaged_checkpoint()
    if packaged is not None and packaged.is_file():
        return packaged
    found = (f" (the installed aisfx package has no {packaged}: reinstall it)"
             if packaged is not None else "")
    raise WeightsNotFoundError(
        f"the pretrained aiSFX weights for audio feature 'aisfx' are not available{found}.\n"
        f"  Install them with: {INSTALL_COMMAND}\n"
        "  (--no-deps: only its weight file is used, and its pins of numpy 1.23 / librosa 0.9\n"
        "  conflict with ours), or set "
        f"{ENV_WEIGHTS} to the path of a copy of its models/checkpoint.pth.")


def _refusal(path: Path, reason: str) -> str:
    return f"refusing to load {path}: {reason}"


def _allow_listed() -> list[Any]:
    """The :data:`ALLOWED_GLOBALS` as objects for ``torch.serialization.safe_globals``."""
    from numpy._core.multiarray import scalar

    return [(scalar, "numpy.core.multiarray.scalar"), (scalar, "numpy._core.multiarray.scalar"),
            np.dtype, np.dtypes.Int64DType]


def _read_checkpoint(path: Path) -> Any:
    """Unpickle ``path`` with torch's weights-only unpickler and :data:`ALLOWED_GLOBALS`; every
    failure is a named error with the file and the reason."""
    import torch

    try:  # list what the pickle names, without running it: refuse before reading anything
        named = set(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except (ValueError, RuntimeError, OSError):
        named = set()  # not a zip checkpoint: torch.load below says what it is
    extra = sorted(named - set(ALLOWED_GLOBALS))
    if extra:
        raise UntrustedWeightsError(_refusal(
            path, f"it holds object types outside the allow-list ({', '.join(extra)}); not "
                  "unpickled, since that could run code"))
    try:
        with torch.serialization.safe_globals(_allow_listed()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:  # torch's message: a page of advice; keep the finding
        lines = [ln.strip() for ln in str(exc).splitlines()
                 if re.search(r"(?i)unsupported global|allowlisted|but got|blocked", ln)]
        raise UntrustedWeightsError(_refusal(
            path, "not a plain weight file: it holds objects outside the allow-list "
                  f"({(lines or ['unsupported pickle content'])[0]}); not loaded, since that "
                  "could run code")) from None
    except EOFError:
        raise WeightsLoadError(_refusal(path, "the file is empty or cut short")) from None
    except Exception as exc:  # noqa: BLE001 (zip, storage and format errors share no base)
        first = (str(exc).strip().splitlines() or [""])[0]
        raise WeightsLoadError(_refusal(
            path, f"not a PyTorch checkpoint ({type(exc).__name__}: {first[:200]})")) from None


def load_aisfx_state(path: Path | str) -> dict[str, torch.Tensor]:
    """The embedding network's state_dict from an aiSFX checkpoint (the package's
    ``(state_dict, datasets)`` tuple, or a bare state_dict), checked tensor by tensor.

    Refused with a named error naming the file: other pickle globals
    (:class:`UntrustedWeightsError`), an unreadable file (:class:`WeightsLoadError`), missing,
    extra, misshaped, non-float or non-finite tensors (:class:`WeightsMismatchError`). The
    classifier heads (``fc.*``) are ignored.
    """
    path = Path(path)
    content = _read_checkpoint(path)
    if isinstance(content, (tuple, list)) and content and isinstance(content[0], Mapping):
        state = content[0]
    elif isinstance(content, Mapping):
        state = content
    else:
        raise WeightsLoadError(_refusal(
            path, f"it holds a {type(content).__name__}, not aiSFX's (state_dict, datasets) "
                  "tuple"))
    prefix = "embedding_net." if any(str(k).startswith("embedding_net.") for k in state) else ""
    mine = {str(k)[len(prefix):]: v for k, v in state.items()
            if str(k).startswith(prefix + "conv_block")}
    expected = build_embedding_net().state_dict()
    check = check_state_dict(mine, expected, values=True)
    if not check.ok:
        problems = []
        if check.missing:
            problems.append(f"missing tensors {first_few(prefix + k for k in check.missing)}")
        if check.unexpected:
            problems.append(f"unexpected tensors {first_few(prefix + k for k in check.unexpected)}")
        problems += [f"{prefix}{k} is a {kind}, not a tensor" for k, kind in check.not_tensor]
        problems += [f"{prefix}{k} has shape {got}, the network needs {want}"
                     for k, got, want in check.wrong_shape]
        problems += [f"{prefix}{k} is {dtype}, not floating point" for k, dtype in check.not_float]
        problems += [f"{prefix}{k} holds NaN or infinite values" for k in check.not_finite]
        raise WeightsMismatchError(_refusal(
            path, "not the aiSFX embedding network's weights: " + first_few(problems, sep="; ")))
    out = {k: v.to(expected[k].dtype) for k, v in mine.items()}
    for key, value in expected.items():  # BatchNorm's counter does not affect inference
        out.setdefault(key, value)
    return out


def checkpoint_digest(path: Path) -> str:
    """SHA-256 of a checkpoint file (once per process and file version; logs once when it is
    not aisfx 0.1.2's)."""
    return file_sha256(path, OFFICIAL_SHA256, "aiSFX checkpoint")
