"""A setting of a process, declared once, on its field of a settings dataclass: its default,
and what its command-line option says and accepts. Pure: no I/O.

The settings class checks the bounds itself (``check_bounds`` from its ``__post_init__``), so
a program that builds settings directly is refused as the command line would refuse it;
modelrollout/options.py builds the command line's options from the same declarations. A
field with a plain default has no option, and a field whose default is itself a settings
dataclass (HttpLimits, DownloadPolicy) brings that class's options along.
"""

from __future__ import annotations

from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any

_KEY = "modelrollout.setting"


@dataclass(frozen=True)
class Setting:
    """What a field's option says and accepts (the default stays on the field)."""

    help: str | None = None
    flag: str | None = None  # None: the field's name, --like-this
    off_flag: str | None = None  # a boolean's --x/--no-x pair; without it, a plain --x flag
    at_least: float | None = None
    above: float | None = None  # an open lower bound
    at_most: float | None = None
    choices: tuple[str, ...] = ()
    file_only: bool = False  # a path that must not be a folder

    def range_text(self) -> str:
        """The bounds as click shows them: "x>=1", "x>0", "0<=x<=1"; "" without bounds."""
        low = self.at_least if self.above is None else self.above
        low_sign = "<=" if self.above is None else "<"
        if low is not None and self.at_most is not None:
            return f"{low:g}{low_sign}x<={self.at_most:g}"
        if low is not None:
            return f"x{'>=' if self.above is None else '>'}{low:g}"
        return f"x<={self.at_most:g}" if self.at_most is not None else ""

    def refusal(self, value: Any) -> str | None:
        """Why ``value`` is not accepted, or None."""
        if value is None:  # an optional setting not given
            return None
        if self.choices and value not in self.choices:
            return f"{value!r} is not one of {', '.join(map(repr, self.choices))}"
        if ((self.at_least is not None and value < self.at_least)
                or (self.above is not None and value <= self.above)
                or (self.at_most is not None and value > self.at_most)):
            return f"{value!r} is not in the range {self.range_text()}"
        return None


def setting(default: Any = MISSING, *, default_factory: Any = MISSING, **declared: Any) -> Any:
    """A dataclass field with an option (keywords: those of Setting); no default: required."""
    return field(default=default, default_factory=default_factory, metadata={_KEY: Setting(**declared)})


def declared(settings_field: Field) -> Setting | None:
    """The field's Setting, or None when it has no option."""
    return settings_field.metadata.get(_KEY)


def flag_of(settings_field: Field) -> str:
    return declared(settings_field).flag or "--" + settings_field.name.replace("_", "-")


def check_bounds(settings: Any) -> None:
    """Raise ValueError for a field of ``settings`` outside what its Setting accepts."""
    for settings_field in fields(settings):
        accepts = declared(settings_field)
        if accepts is not None:
            refusal = accepts.refusal(getattr(settings, settings_field.name))
            if refusal is not None:
                raise ValueError(f"{flag_of(settings_field)}: {refusal}")
