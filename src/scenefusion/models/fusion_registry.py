"""The registry of every fusion method: ``early``, and ``late:<id>`` / ``hybrid:<id>`` for each
registered late combiner (:mod:`scenefusion.models.combiners`), read from ``COMBINERS`` when
asked, so registering a combiner is the only edit a new fusion method needs. Ids are for
configs, display and loading; code that has a resolved combiner builds
:class:`~scenefusion.models.fusion.LateFusion` / ``HybridFusion`` with it directly.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

from ..registry import Entry, Registry
from .combiners import COMBINERS, Combiner
from .early import EarlyFusion
from .fusion import HybridFusion, LateFusion

EARLY_DESCRIPTION = "concatenate per-modality standardised features, one classifier"


class FusionRegistry(Registry[Callable[..., Any]]):
    """Fusion id -> factory of an unfitted fusion estimator (keywords go to its ``__init__``):
    ``early``, then ``late:<id>`` and ``hybrid:<id>`` for every late combiner registered at
    the time of asking, so registering a combiner is the only edit a new method needs. The
    table is rebuilt only when the combiners changed since it was last read."""

    def __init__(self) -> None:
        super().__init__("fusion method")
        self._built_from: tuple[Entry[type[Combiner]], ...] | None = None

    def _follow_combiners(self) -> None:
        combiners = tuple(COMBINERS.entries())
        if combiners == self._built_from:
            return
        self._entries = {"early": Entry("early", EarlyFusion, EARLY_DESCRIPTION)}
        for family, cls, what in (("late", LateFusion, "one model per modality"),
                                  ("hybrid", HybridFusion,
                                   "early-fused model + one model per modality")):
            for c in combiners:
                names = c.obj.setting_names()  # what fusion.params may set, shown by `list`
                settings = f" (fusion.params: {', '.join(names)})" if names else ""
                self._entries[f"{family}:{c.id}"] = Entry(
                    f"{family}:{c.id}", functools.partial(cls, method=c.id),
                    f"{what}, combined by {c.description}{settings}")
        self._built_from = combiners

    def entry(self, id: str) -> Entry[Callable[..., Any]]:
        self._follow_combiners()
        return super().entry(id)

    def list(self) -> list[str]:
        self._follow_combiners()
        return super().list()

    def describe(self) -> dict[str, str]:
        self._follow_combiners()
        return super().describe()

    def entries(self) -> list[Entry[Callable[..., Any]]]:
        self._follow_combiners()
        return super().entries()

    def __contains__(self, id: object) -> bool:
        self._follow_combiners()
        return super().__contains__(id)

    def __iter__(self) -> Iterator[str]:
        self._follow_combiners()
        return super().__iter__()

    def __len__(self) -> int:
        self._follow_combiners()
        return super().__len__()

    def register(self, id: str, obj: Any = None, *, description: str) -> Any:
        raise TypeError("fusion ids follow the late combiners: add one with "
                        "scenefusion.models.combiners.register_combiner")

    def unregister(self, id: str) -> Any:
        raise TypeError("fusion ids follow the late combiners: remove one from COMBINERS")


FUSION = FusionRegistry()


def make_fusion(fusion_id: str, **kwargs: Any) -> EarlyFusion | LateFusion | HybridFusion:
    """Build an unfitted fusion model from its stable id (see :data:`FUSION`)."""
    return FUSION.get(fusion_id)(**kwargs)

