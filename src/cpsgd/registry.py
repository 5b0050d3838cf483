"""Registries: one per pipeline stage, mapping backend names (CLI) and codes (bitstream) to classes."""

from __future__ import annotations

import importlib
from typing import Callable, Generic, TypeVar

from cpsgd.errors import BitstreamError, InputError

T = TypeVar("T")


class Registry(Generic[T]):
    """Named backends of one stage.

    ``code`` is the backend's number in the bitstream (0-15, stored in a section's first byte);
    backends that never write a section (estimators, generators) register without one.
    ``builtins`` maps the names of built-in backends to the modules that register them; such a
    module is imported when its backend is first asked for, so that importing the stage (for its
    names, say) does not load every backend's libraries.
    """

    def __init__(self, stage: str, builtins: dict[str, str] | None = None) -> None:
        self.stage = stage
        self._builtins = dict(builtins or {})
        self._by_name: dict[str, type[T]] = {}
        self._by_code: dict[int, type[T]] = {}

    def register(self, name: str, code: int | None = None) -> Callable[[type[T]], type[T]]:
        def add(cls: type[T]) -> type[T]:
            if name in self._by_name:
                raise ValueError(f"{self.stage} backend {name!r} registered twice")
            if code is not None:
                if not 0 <= code <= 15 or code in self._by_code:
                    raise ValueError(f"{self.stage} backend code {code} invalid or taken")
                self._by_code[code] = cls
            cls.name = name  # type: ignore[attr-defined]
            cls.code = code  # type: ignore[attr-defined]
            self._by_name[name] = cls
            return cls

        return add

    def get(self, name: str) -> type[T]:
        if name not in self._by_name and name in self._builtins:
            importlib.import_module(self._builtins[name])
        try:
            return self._by_name[name]
        except KeyError:
            raise InputError(
                f"unknown {self.stage} {name!r}; choose one of: {', '.join(self.names())}"
            ) from None

    def by_code(self, code: int) -> type[T]:
        if code not in self._by_code:
            for module in self._builtins.values():
                importlib.import_module(module)
        try:
            return self._by_code[code]
        except KeyError:
            raise BitstreamError(f"unknown {self.stage} backend code {code}") from None

    def names(self) -> list[str]:
        return sorted({*self._builtins, *self._by_name})

    def __contains__(self, name: str) -> bool:
        return name in self._by_name or name in self._builtins
