"""Comparing a weight file's state_dict with the one an architecture needs, before loading it,
so that a wrong file gets a readable error naming the first few bad keys instead of a
traceback listing hundreds. Imports torch only when called."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: Keys whose absence is harmless: BatchNorm's counter does not affect inference.
OPTIONAL_SUFFIX = "num_batches_tracked"


@dataclass
class StateDictCheck:
    """What is wrong with a state_dict, by kind (empty lists: nothing is)."""

    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    #: (key, type name of the value)
    not_tensor: list[tuple[str, str]] = field(default_factory=list)
    #: (key, shape in the file, shape the model needs)
    wrong_shape: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    #: (key, dtype in the file) where the model needs floating point
    not_float: list[tuple[str, str]] = field(default_factory=list)
    not_finite: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.not_tensor or self.wrong_shape
                    or self.not_float or self.not_finite)


def check_state_dict(state: Mapping[str, Any], expected: Mapping[str, Any], *,
                     values: bool = False) -> StateDictCheck:
    """Compare ``state`` with the ``expected`` state_dict: missing keys (ignoring
    :data:`OPTIONAL_SUFFIX`), unexpected keys, non-tensor values and shape mismatches; with
    ``values``, also non-float tensors where floats are needed and NaN or infinite values
    (each key gets its first problem only)."""
    import torch

    check = StateDictCheck(
        missing=[k for k in expected if k not in state and not k.endswith(OPTIONAL_SUFFIX)],
        unexpected=[k for k in state if k not in expected],
    )
    for key, value in state.items():
        if key not in expected:
            continue
        want = expected[key]
        if not isinstance(value, torch.Tensor):
            check.not_tensor.append((key, type(value).__name__))
        elif tuple(value.shape) != tuple(want.shape):
            check.wrong_shape.append((key, tuple(value.shape), tuple(want.shape)))
        elif not values:
            continue
        elif want.is_floating_point() and not value.is_floating_point():
            check.not_float.append((key, str(value.dtype)))
        elif value.is_floating_point() and not bool(torch.isfinite(value).all()):
            check.not_finite.append(key)
    return check


def first_few(items: Iterable[str], n: int = 5, sep: str = ", ") -> str:
    """``a, b, c, d, e, ... (+k more)``: the first ``n`` items and how many more there are."""
    items = list(items)
    more = f"{sep}... (+{len(items) - n} more)" if len(items) > n else ""
    return sep.join(items[:n]) + more
