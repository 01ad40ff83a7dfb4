"""Small shared types for service signatures."""

from __future__ import annotations

import enum
from typing import Final, Literal


class _Unchanged(enum.Enum):
    UNCHANGED = enum.auto()


# Default of an optional keyword argument of an update service: "leave this field as it is"
# (None is a value some fields take).
UNCHANGED: Final = _Unchanged.UNCHANGED
Unchanged = Literal[_Unchanged.UNCHANGED]
