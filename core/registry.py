"""A small registry of plug-in kinds: kind -> label, class, per-instance configuration.

Executors use it (`training.executors`), and so will notification channels: one place lists
what kinds exist, so settings validation, configuration resolution, forms and the admin all
read the same list instead of restating it.

    EXECUTORS = Registry[Executor]("executor")

    @EXECUTORS.register("local", label="Local process")
    class LocalExecutor(Executor): ...

    EXECUTORS.get("local")        # a LocalExecutor, built once with its configuration
    EXECUTORS.build("local")      # a new LocalExecutor each call (for stateful instances)
    EXECUTORS.choices()           # [("local", "Local process"), ...] for forms and the admin
    "local" in EXECUTORS          # what settings validation asks

`choices` is a method, so a Django form field can take `choices=EXECUTORS.choices` (a callable,
evaluated when the form is built) and a kind registered later still shows up.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class UnknownKind(LookupError):
    """A kind nobody registered; the message lists the ones that exist."""


@dataclass(frozen=True)
class Entry(Generic[T]):
    kind: str
    label: str
    cls: type[T]
    # Keyword arguments the instance is built with (e.g. a channel's webhook URL).
    options: Mapping[str, Any] = field(default_factory=dict)


class Registry(Generic[T]):
    def __init__(self, noun: str) -> None:
        self.noun = noun
        self._entries: dict[str, Entry[T]] = {}
        self._instances: dict[str, T] = {}

    def register(self, kind: str, *, label: str = "", **options: Any) -> Callable[[type[T]], type[T]]:
        """Class decorator: record `cls` under `kind`. Registering a kind twice is a mistake."""

        if not isinstance(kind, str) or not kind or kind != kind.strip():
            raise ValueError(f"{self.noun} kind must be a non-empty string without surrounding spaces, not {kind!r}")

        def decorate(cls: type[T]) -> type[T]:
            existing = self._entries.get(kind)
            if existing is not None and existing.cls is not cls:
                raise ValueError(f"{self.noun} kind {kind!r} is already registered to {existing.cls.__qualname__}")
            self._entries[kind] = Entry(kind, label or kind, cls, dict(options))
            self._instances.pop(kind, None)
            return cls

        return decorate

    def entry(self, kind: str) -> Entry[T]:
        try:
            return self._entries[kind]
        except KeyError:
            raise UnknownKind(
                f"unknown {self.noun} {kind!r}; known: {', '.join(sorted(self._entries)) or 'none'}"
            ) from None

    def label(self, kind: str) -> str:
        return self.entry(kind).label

    def get(self, kind: str) -> T:
        """The kind's instance, built on first use with its registered options."""
        instance = self._instances.get(kind)
        if instance is None:
            instance = self._instances[kind] = self.build(kind)
        return instance

    def build(self, kind: str, **overrides: Any) -> T:
        """A new instance of the kind, with its registered options and `overrides` on top."""
        entry = self.entry(kind)
        return entry.cls(**{**entry.options, **overrides})

    def kinds(self) -> list[str]:
        return sorted(self._entries)

    def choices(self) -> list[tuple[str, str]]:
        return [(kind, self._entries[kind].label) for kind in self.kinds()]

    def __contains__(self, kind: object) -> bool:
        # Any value may be asked about (a JSON body's list, None): only a registered str is in.
        return isinstance(kind, str) and kind in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(self._entries[kind] for kind in self.kinds())
