"""Reading saved model files without trusting them: the errors a refused file raises, the
skops allow-list, and the checks on torch tensors read from safetensors.

Every failure while reading a file becomes one :class:`ModelLoadError` "refusing to load FILE:
reason" (a library's own message kept as the reason), so a damaged or foreign file is refused,
never half-loaded, and never a traceback from inside skops or torch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import skops.io as sio
import torch

from ..errors import ScenefusionError

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


class ModelLoadError(ScenefusionError, ValueError):
    """A saved model is damaged or inconsistent (truncated file, edited manifest, tensors that
    do not fit): refused with the file and the reason, never half-loaded."""

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"refusing to load {path}: {reason}")


class UntrustedModelError(ModelLoadError):
    """A saved file contains object types outside the allowlist; it was not loaded. A
    ModelLoadError, so one ``except ModelLoadError`` covers every refused load."""


class ModelNotFoundError(ScenefusionError, FileNotFoundError):
    """No saved model at the given folder (it or its manifest is missing). A
    FileNotFoundError, so callers that handle missing paths keep working; inside a model (a
    missing member or encoder) it becomes a ModelLoadError naming the missing file."""

    def __init__(self, path: Path | str, reason: str = "file not found") -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"refusing to load {path}: {reason}")


@contextlib.contextmanager
def refusing(path: Path) -> Iterator[None]:
    """Any failure while reading `path` becomes one ModelLoadError naming it (a library's own
    message is kept as the reason); interrupts and memory errors pass through."""
    try:
        yield
    except (ModelLoadError, KeyboardInterrupt, MemoryError):
        raise
    except ModelNotFoundError as exc:  # a member or encoder folder of this model is missing
        raise ModelLoadError(exc.path, exc.reason) from None
    except FileNotFoundError as exc:
        raise ModelLoadError(exc.filename or path, "file not found") from None
    except Exception as exc:  # noqa: BLE001 - every library raises its own types here
        detail = " ".join(str(exc).split())  # torch lists its findings over many lines
        if len(detail) > 300:
            detail = detail[:300] + " ..."
        raise ModelLoadError(path, f"{type(exc).__name__}: {detail}") from None


def dump_skops(obj: Any, path: Path) -> None:
    sio.dump(obj, path)
    bad = sorted(set(sio.get_untrusted_types(file=path)) - SKOPS_ALLOWED_TYPES)
    if bad:  # fail at save time rather than producing a file we would refuse to load
        path.unlink()
        raise TypeError(f"cannot save {path.name}: types outside the allowlist: {bad}")


def load_skops(path: Path, extra_trusted: Iterable[str] = ()) -> Any:
    """skops load restricted to the allowlist (plus explicitly passed extra types); a file
    that is not a skops archive (truncated, empty, a pickle renamed) is refused unread."""
    with refusing(path):
        untrusted = sio.get_untrusted_types(file=path)
    bad = sorted(set(untrusted) - SKOPS_ALLOWED_TYPES - set(extra_trusted))
    if bad:
        raise UntrustedModelError(
            path, f"it contains types outside the allowlist: {bad}. "
            "Only if you trust this file, pass extra_trusted_types=[...] to load_model."
        )
    with refusing(path):
        return sio.load(path, trusted=untrusted)


def checked_scaler(path: Path, tensors: dict[str, torch.Tensor], n_features: int,
            ) -> tuple[np.ndarray, np.ndarray]:
    """The input scaler stored beside the weights (popped from `tensors`), checked: a
    wrong-length, non-finite or non-positive scale would skew every prediction silently."""
    missing = [k for k in ("scaler.mean", "scaler.scale") if k not in tensors]
    if missing:
        raise ModelLoadError(path, f"missing tensor(s) {', '.join(missing)}")
    mean, scale = tensors.pop("scaler.mean"), tensors.pop("scaler.scale")
    for name, t in (("scaler.mean", mean), ("scaler.scale", scale)):
        if tuple(t.shape) != (n_features,) or not t.is_floating_point():
            raise ModelLoadError(path, f"tensor {name} is {t.dtype} {tuple(t.shape)}; expected "
                                       f"float ({n_features},) for {n_features} features")
        if not torch.isfinite(t).all():
            raise ModelLoadError(path, f"tensor {name} holds NaN or infinite values")
    if not (scale > 0).all():
        raise ModelLoadError(path, "tensor scaler.scale holds values <= 0")
    return mean.numpy(), scale.numpy()


def _output_keys(net: torch.nn.Module) -> tuple[str, ...]:
    """The saved names of the final linear layer's tensors (its rows are the classes)."""
    linear = [name for name, m in net.named_modules() if isinstance(m, torch.nn.Linear)]
    return (f"net.{linear[-1]}.weight", f"net.{linear[-1]}.bias") if linear else ()


def check_tensors(path: Path, found: dict[str, torch.Tensor], net: torch.nn.Module,
                   n_classes: int) -> None:
    """The saved tensors must be exactly the network's: same names, shapes and dtypes, all
    finite, and an output layer with one row per class in the manifest. Stricter than
    ``features.state_dict.check_state_dict`` (made for weight files from elsewhere, which may
    omit BatchNorm counters and differ in dtype), so it keeps its own single pass."""
    expected = {f"net.{k}": v for k, v in net.state_dict().items()}
    missing, extra = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
    if missing:
        raise ModelLoadError(path, f"missing tensor(s) {', '.join(missing)}")
    if extra:
        raise ModelLoadError(path, f"unexpected tensor(s) {', '.join(extra)}")
    for key in _output_keys(net):
        if found[key].ndim and found[key].shape[0] != n_classes:
            raise ModelLoadError(path, f"the network's output layer gives {found[key].shape[0]} "
                                       f"classes but the manifest lists {n_classes}")
    for key, want in expected.items():
        got = found[key]
        if got.shape != want.shape or got.dtype != want.dtype:
            raise ModelLoadError(path, f"tensor {key} is {got.dtype} {tuple(got.shape)} but the "
                                       f"network expects {want.dtype} {tuple(want.shape)}")
        if got.is_floating_point() and not torch.isfinite(got).all():
            raise ModelLoadError(path, f"tensor {key} holds NaN or infinite values")
