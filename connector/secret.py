"""A value that must never be printed: its repr and str are masked, so logs and errors cannot leak it."""

from __future__ import annotations

from typing import Final

MASK: Final = "**********"


class Secret:
    """Holds a secret string; read it with `reveal()` at the one place it is sent or decrypted."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return f"Secret({MASK})"

    __str__ = __repr__

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a Secret is not serialisable; pass its identifier instead")
