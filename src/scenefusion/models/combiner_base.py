"""The base of every late combiner: its declared settings, and the guard.

A combiner's settings are its own annotated class attributes with a default, e.g.
``weight_step: float = 0.1``: every subclass is made a keyword-only dataclass, so a setting
is an ``__init__`` keyword stored as an attribute (scikit-learn's convention) and
:meth:`Combiner.settings` finds them all, the inherited ones included. A combiner with a new
setting is one declaration in its own class, and ``fusion.params`` in a config can set it.
Values are checked against the annotation (``Annotated[float, Field(gt=0)]`` adds a range)
when the combiner is built, so a bad config value fails before any work.

A *guarded* combiner (``guarded = True``) can only help, by construction, on the rows it
learns from: the fusion model calls :meth:`Combiner.learn`, which first fits a temperature per
member (a member confidently wrong on recordings it never heard is softened before it can
outvote the others), then learns, then scores the learnt rule on folds it did not learn from;
when those held-out rows say the rule does not beat the best member alone, or when the
evidence is too thin to say anything (a class with a single training group, whose folds
cannot hold a recording out), the rule is the best member alone.

Member probabilities travel as ``dict[member name, (N, K) array]``, columns in the fusion
model's class order. A combiner's learnt state is saved by the model's persistence as plain
JSON (:meth:`Combiner.get_state`) plus fitted scikit-learn parts (:attr:`Combiner.parts`,
each written as ``<part>.skops`` under the skops allow-list).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import typing
from collections.abc import Sequence
from typing import Any, ClassVar, Self

import numpy as np
from pydantic import TypeAdapter, ValidationError

from ..errors import InvalidValue
from .base import normalise_proba
from .pooling import best_member, score, with_check_rows
from .temperature import apply_temperature, fit_temperature

log = logging.getLogger(__name__)

Probas = dict[str, np.ndarray]


@dataclasses.dataclass(kw_only=True, eq=False)
class Combiner:
    """One way of combining member probabilities; subclasses override what they change.

    ``combine(probas, complete)`` gets ``complete=False`` when a modality is missing and only
    some members ran: a combiner whose learnt state needs every member must then fall back to
    something that does not (the default: their mean). A subclass that defines
    ``__post_init__`` calls ``super().__post_init__()`` (it checks the settings).
    """

    #: the registered id (set by ``register_combiner``; names it in fusion ids and files)
    id: ClassVar[str] = ""
    #: fitted on member predictions (validation or out of fold) before it can combine
    learns: ClassVar[bool] = False
    #: where it learns when the fusion model is not told: validation rows when there are
    #: some (True) or out-of-fold training rows (False)
    prefers_validation: ClassVar[bool] = False
    #: fitted scikit-learn objects kept as attributes of these names, saved as <name>.skops
    parts: ClassVar[tuple[str, ...]] = ()
    #: calibrate members, fall back to the best member on thin or contrary evidence
    guarded: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        dataclasses.dataclass(kw_only=True, eq=False)(cls)  # its annotated defaults: settings

    def __post_init__(self) -> None:
        for name, value in self.settings().items():
            adapter = _adapters(type(self)).get(name)
            if adapter is None:
                continue
            try:
                adapter.validate_python(value, strict=True)
            except ValidationError as err:
                raise InvalidValue(f"late combiner {self.name()!r}: setting {name!r} "
                                   f"{_reason(err)}, got {value!r}") from None

    # -- settings ------------------------------------------------------------------------------
    @classmethod
    def setting_names(cls) -> tuple[str, ...]:
        """The settings this combiner declares (its own and inherited), in order."""
        return tuple(f.name for f in dataclasses.fields(cls) if f.init)

    @classmethod
    def name(cls) -> str:
        """The registered id, or the class name of a combiner not registered."""
        return cls.id or cls.__name__

    def settings(self) -> dict[str, Any]:
        """Setting name -> value: what :meth:`clone` rebuilds it from and files save."""
        return {n: getattr(self, n) for n in self.setting_names()}

    def clone(self) -> Self:
        """An unfitted combiner of the same class and settings (the prototype's copy that
        one fit, or one cross-validation fold, learns into)."""
        return type(self)(**self.settings())

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """scikit-learn's view of the settings (``combiner__meta_C`` on a fusion model)."""
        return self.settings()

    def set_params(self, **params: Any) -> Self:
        unknown = sorted(set(params) - set(self.setting_names()))
        if unknown:
            raise InvalidValue(unknown_settings(type(self), unknown))
        for name, value in params.items():
            setattr(self, name, value)
        self.__post_init__()
        return self

    # -- what a combiner overrides ---------------------------------------------------------
    def fit(self, probas: Probas, y: np.ndarray, classes: np.ndarray) -> Combiner:
        """Learn from member probabilities ``probas`` of rows labelled ``y``."""
        return self

    def combine(self, probas: Probas, complete: bool) -> np.ndarray:
        """(N, K) scores (normalised by the caller) from the members that ran."""
        return np.mean(list(probas.values()), axis=0)

    def shares(self, names: list[str]) -> np.ndarray:
        """How much each member counts (any non-negative scale; reports normalise it)."""
        return np.ones(len(names))

    # -- persistence: plain-JSON state, checked when read back ---------------------------------
    def get_state(self) -> dict[str, Any]:
        return {}

    def set_state(self, state: dict[str, Any], names: list[str], classes: np.ndarray) -> None:
        """Restore what :meth:`get_state` saved; raise ValueError with the reason when it
        does not fit the members or classes (the caller names the manifest)."""

    def check_part(self, part: str, names: list[str], classes: np.ndarray) -> None:
        """Check a loaded part (already set as the attribute ``part``) against the members
        and classes; raise ValueError with the reason (the caller names the part's file)."""

    # -- the guard: calibrated members, learnt rule kept only where held-out rows back it ------
    def learn(self, probas: Probas, y: np.ndarray, classes: np.ndarray,
              folds: Sequence[tuple[np.ndarray, np.ndarray]] = (), thin: str | None = None,
              check: tuple[Probas, np.ndarray] | None = None) -> Combiner:
        """What the fusion model calls: :meth:`fit`, guarded for a guarded combiner.

        ``folds`` (over the rows given) let the guard score the learnt rule on rows it did not
        learn from; ``thin`` says why those rows cannot measure generalisation (then the rule
        is the best member alone). ``check`` is (member probabilities, labels) of held-out
        groups scored by the *final* members (the validation split): out-of-fold members are
        trained on less and can rank the members differently from the final ones, so a
        guarded combiner learns from both sets of rows together, and the validation rows are
        one more fold the guard holds out (on the few-recordings benchmark this beat
        learning out of fold alone and beat vetoing by validation alone)."""
        self.temperatures: dict[str, float] = {}
        self.solo: str | None = None
        self.guard_note: str | None = None
        if not self.guarded:
            return self.fit(probas, y, classes) if self.learns else self
        if check is not None:
            probas, y, folds = with_check_rows(probas, y, folds, check)
        index = np.searchsorted(classes, y)
        self.temperatures = {m: round(fit_temperature(p, index), 4) for m, p in probas.items()}
        calibrated = self._calibrated(probas)
        self.anchor, anchor_key = best_member(calibrated, y, classes)
        if self.learns:  # also when thin: a saved combiner always has its learnt parts
            self.fit(calibrated, y, classes)
        if thin:
            self.solo, self.guard_note = self.anchor, f"{self.anchor} alone: {thin}"
            return self
        if folds:
            fused = np.zeros((len(y), len(classes)))
            for fit_rows, held_out in folds:
                inner = self.clone().learn(
                    {m: p[fit_rows] for m, p in probas.items()}, y[fit_rows], classes)
                fused[held_out] = inner.answer({m: p[held_out] for m, p in probas.items()},
                                               True)
            key = score(fused, y, classes)
            if key <= anchor_key:
                self.solo = self.anchor
                self.guard_note = (f"{self.anchor} alone: on held-out folds the rule scored "
                                   f"accuracy {key[0]:.3f} against {anchor_key[0]:.3f} for "
                                   f"{self.anchor} alone")
        return self

    def answer(self, probas: Probas, complete: bool) -> np.ndarray:
        """(N, K) normalised fused probabilities (what the fusion model returns)."""
        temperatures = getattr(self, "temperatures", {})
        solo = getattr(self, "solo", None)
        probas = self._calibrated(probas) if temperatures else probas
        if solo is not None:
            if solo in probas:
                return normalise_proba(probas[solo])
            complete = False  # the chosen member could not run: the rule for what did
        return normalise_proba(self.combine(probas, complete))

    def member_shares(self, names: list[str]) -> np.ndarray:
        solo = getattr(self, "solo", None)
        if solo is not None:
            return np.array([float(n == solo) for n in names])
        return np.asarray(self.shares(names), dtype=float)

    def _calibrated(self, probas: Probas) -> Probas:
        temperatures = getattr(self, "temperatures", {})
        return {m: apply_temperature(p, temperatures[m]) if m in temperatures else p
                for m, p in probas.items()}

    def full_state(self) -> dict[str, Any]:
        """:meth:`get_state` plus the guard's temperatures and fallback (plain JSON)."""
        state = self.get_state()
        if self.guarded:
            state["guard"] = {"temperatures": getattr(self, "temperatures", {}),
                              "solo": getattr(self, "solo", None),
                              "note": getattr(self, "guard_note", None)}
        return state

    def restore(self, state: dict[str, Any], names: list[str], classes: np.ndarray) -> None:
        """Inverse of :meth:`full_state`; ValueError with the reason when it does not fit."""
        guard = state.get("guard", {"temperatures": {}, "solo": None, "note": None})
        temperatures = guard.get("temperatures") if isinstance(guard, dict) else None
        if (not isinstance(temperatures, dict) or not set(temperatures) <= set(names)
                or not all(isinstance(t, (int, float)) and not isinstance(t, bool)
                           and np.isfinite(t) and t > 0 for t in temperatures.values())):
            raise ValueError(f"state 'guard.temperatures' must give a positive number for "
                             f"members of {names}")
        solo = guard.get("solo")
        if solo is not None and solo not in names:
            raise ValueError(f"state 'guard.solo' must name one of the members {names}")
        self.temperatures, self.solo = dict(temperatures), solo
        self.guard_note = guard.get("note")
        self.set_state(state, names, classes)


def unknown_settings(cls: type[Combiner], names: Sequence[str]) -> str:
    """The sentence for settings a combiner does not declare, naming the ones it does."""
    valid = cls.setting_names()
    has = f"its settings: {', '.join(valid)}" if valid else "it has no settings"
    return (f"late combiner {cls.name()!r} has no setting "
            f"{', '.join(repr(n) for n in names)}; {has}")


@functools.cache
def _adapters(cls: type[Combiner]) -> dict[str, TypeAdapter]:
    """One validator per setting, from its annotation (none where it cannot be resolved:
    a combiner defined inside a function that names a local type)."""
    try:
        hints = typing.get_type_hints(cls, include_extras=True)
    except (NameError, TypeError) as err:
        log.debug("late combiner %s: settings not type-checked (%s)", cls.__name__, err)
        return {}
    return {n: TypeAdapter(hints[n]) for n in cls.setting_names() if n in hints}


def _reason(err: ValidationError) -> str:
    message = str(err.errors()[0]["msg"])
    return message.removeprefix("Input ") if message.startswith("Input ") else message
