"""Name -> object registries (tasks, agents, reward kinds), with "did you mean" errors.

An entry is the object itself, or a lazy reference ``"package.module:attribute"`` imported on
first use (as gymnasium's ``entry_point`` strings are), so that listing names or parsing a
command line imports no heavy or optional dependency::

    AGENTS = Registry("agent")
    AGENTS.register("ppo", "rewardlab.agents.ppo_agent:PPOAgent")
    AGENTS.names()          # ["ppo"]
    AGENTS.get("pp0")       # UnknownNameError: unknown agent 'pp0'; did you mean 'ppo'? known: ppo

No project imports.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(ValueError):
    """A name that is not registered; the message suggests the closest registered one."""

    def __init__(self, kind: str, name: str, known: list[str]) -> None:
        self.kind, self.name, self.known = kind, name, known
        super().__init__(f"unknown {kind} {name[:80]!r}; {did_you_mean(name, known)}")


def did_you_mean(name: str, known: list[str]) -> str:
    """``"did you mean 'x'? known: a, b, x"`` (without the question when nothing is close)."""
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"{hint}known: {', '.join(known) if known else '(none)'}"


class Registry(Generic[T]):
    """Named entries of one kind, in registration order.

    Args:
        kind: what the entries are (``"task"``, ``"agent"``), for error messages.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T | str] = {}

    def register(self, name: str, entry: T | str | None = None, replace: bool = False) -> Any:
        """Register ``entry`` under ``name``; without ``entry``, a decorator that registers its
        argument.

        Args:
            name: the registered name.
            entry: the object, or ``"module:attribute"`` imported by :meth:`get`.
            replace: allow replacing an existing entry (otherwise ``ValueError``).
        """
        if entry is None:

            def decorator(obj: T) -> T:
                self.register(name, obj, replace)
                return obj

            return decorator
        if name in self._entries and not replace:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = entry
        return entry

    def unregister(self, name: str) -> None:
        """Remove ``name`` (no error when absent)."""
        self._entries.pop(name, None)

    def get(self, name: str) -> T:
        """The entry of ``name``, importing a lazy reference on first use.

        Raises:
            UnknownNameError: ``name`` is not registered.
        """
        try:
            entry = self._entries[name]
        except (KeyError, TypeError):
            raise UnknownNameError(self.kind, str(name), self.names()) from None
        if isinstance(entry, str):
            module, _, attr = entry.partition(":")
            obj: Any = importlib.import_module(module)
            for part in attr.split(".") if attr else ():
                obj = getattr(obj, part)
            self._entries[name] = obj
            return obj
        return entry

    def names(self) -> list[str]:
        """Registered names, in registration order."""
        return list(self._entries)

    def check(self, name: str) -> None:
        """Raise :class:`UnknownNameError` unless ``name`` is registered (imports nothing)."""
        if name not in self._entries:
            raise UnknownNameError(self.kind, str(name), self.names())

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)
