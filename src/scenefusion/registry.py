"""One registry shape for every pluggable part: image backbones, audio features, models, fusion,
data layouts.

A :class:`Registry` maps a stable string id (the one configs and the CLI use) to an entry plus a
one-line description, in the spirit of timm's ``_registry.py`` and torchvision's
``register_model`` / ``get_model``. Config validation, ``scenefusion list`` and the tests read
registries, so adding an entry needs no other edit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar, overload

from .errors import ScenefusionError

T = TypeVar("T")


class UnknownIdError(ScenefusionError, KeyError, ValueError):
    """An id that is not registered; the message lists the valid ones.

    Subclasses both KeyError (a failed lookup) and ValueError (bad user input), so callers that
    report configuration errors catch it either way.
    """

    def __str__(self) -> str:  # KeyError would repr() the message, quotes and all
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class Entry(Generic[T]):
    """A registered object with its id and one-line description."""

    id: str
    obj: T
    description: str


class Registry(Generic[T]):
    """Ids -> entries of one kind (``kind`` names it in messages, e.g. "image backbone")."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    @overload
    def register(self, id: str, obj: T, *, description: str) -> T: ...

    @overload
    def register(self, id: str, *, description: str) -> Callable[[T], T]: ...

    def register(self, id: str, obj: T | None = None, *, description: str):
        """Add ``obj`` under ``id``; without ``obj``, return a decorator that does.

        Duplicates are refused (two entries under one id would make a config ambiguous), and so
        is an empty description (``scenefusion list`` shows one per entry).
        """
        if not description.strip() or "\n" in description.strip():
            raise ValueError(f"{self.kind} {id!r}: the description must be one non-empty line")

        def add(value: T) -> T:
            if id in self._entries:
                raise ValueError(f"{self.kind} id {id!r} is already registered")
            self._entries[id] = Entry(id, value, description.strip())
            return value

        return add if obj is None else add(obj)

    def unregister(self, id: str) -> T:
        """Remove and return the entry under ``id`` (plugins being unloaded, tests that
        register a part of their own)."""
        entry = self.entry(id)
        del self._entries[id]
        return entry.obj

    def get(self, id: str) -> T:
        """The entry registered under ``id``; an unknown id names the valid ones."""
        return self.entry(id).obj

    def entry(self, id: str) -> Entry[T]:
        try:
            return self._entries[id]
        except KeyError:
            raise UnknownIdError(
                f"unknown {self.kind} {id!r}; choose one of {', '.join(self._entries)}"
            ) from None

    def list(self) -> list[str]:
        """Registered ids in registration order."""
        return list(self._entries)

    def describe(self) -> dict[str, str]:
        """Id -> one-line description, in registration order."""
        return {k: e.description for k, e in self._entries.items()}

    def entries(self) -> list[Entry[T]]:
        return list(self._entries.values())

    def __contains__(self, id: object) -> bool:
        return id in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.list()})"
