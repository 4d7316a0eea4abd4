"""The command line's options, built from the settings dataclasses.

Each field declared with ``setting()`` (settings_fields.py) becomes one option: its flag,
help and bounds as declared, its type from the field's annotation, its default read from
the field, and its environment variable named after the flag. A field whose default is
itself settings (HttpLimits, DownloadPolicy) adds that class's options, and is built from
them.
"""

from __future__ import annotations

import dataclasses
import importlib
import typing
from pathlib import Path

import click

from .settings_fields import Setting, declared, flag_of

ENV_PREFIX = "MODELROLLOUT_"


def envvar_of(flag: str) -> str:
    """``--allow-nonfinite/--reject-nonfinite`` -> MODELROLLOUT_ALLOW_NONFINITE."""
    return ENV_PREFIX + flag.split("/")[0].removeprefix("--").replace("-", "_").upper()


def option(*flags: str, **kwargs):
    """click.option with its environment variable, both shown in --help with the default."""
    long_flag = next(f for f in flags if f.startswith("--"))
    return click.option(*flags, envvar=envvar_of(long_flag), show_envvar=True, show_default=True, **kwargs)


class SettingOption(click.Option):
    """An option that sets one field of a settings class; ``path`` names the field, through
    the embedded settings it is in: ("http", "max_line_bytes")."""

    def __init__(self, path: tuple[str, ...], *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.path = path


def options_of(settings_class: type, path: tuple[str, ...] = ()) -> list[SettingOption]:
    """The options of a settings class, in the order of its fields."""
    annotations = typing.get_type_hints(settings_class)
    options = []
    for field in dataclasses.fields(settings_class):
        default = _default_of(field)
        if dataclasses.is_dataclass(default):
            options += options_of(type(default), (*path, field.name))
        elif declared(field) is not None:
            options.append(_option_of(field, annotations[field.name], default, (*path, field.name)))
    return options


def _default_of(field: dataclasses.Field):
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return field.default


def _option_of(field: dataclasses.Field, annotation, default, path: tuple[str, ...]) -> SettingOption:
    accepts = declared(field)
    flag = flag_of(field)
    kind = _without_none(annotation)
    if kind is bool:
        flags, shape = f"{flag}/{accepts.off_flag}" if accepts.off_flag else flag, {"is_flag": True}
    elif typing.get_origin(kind) is tuple:
        flags, shape = flag, {"multiple": True, "type": _click_type(typing.get_args(kind)[0], accepts)}
    else:
        flags, shape = flag, {"type": _click_type(kind, accepts)}
    if default is not dataclasses.MISSING:
        shape["default"] = default
    return SettingOption(path, [flags, "__".join(path)], envvar=envvar_of(flag), show_envvar=True,
                         show_default=True, required=default is dataclasses.MISSING, help=accepts.help,
                         **shape)


def _without_none(annotation):
    """``str | None`` -> str."""
    kinds = typing.get_args(annotation)
    if type(None) in kinds and len(kinds) == 2:
        return next(kind for kind in kinds if kind is not type(None))
    return annotation


def _click_type(kind: type, accepts: Setting) -> click.ParamType:
    if accepts.choices:
        return click.Choice(accepts.choices)
    if kind is Path:
        return click.Path(path_type=Path, dir_okay=not accepts.file_only)
    if kind in (int, float):
        low = accepts.at_least if accepts.above is None else accepts.above
        if low is None and accepts.at_most is None:
            return click.INT if kind is int else click.FLOAT
        bounded = click.IntRange if kind is int else click.FloatRange
        return bounded(min=low, max=accepts.at_most, min_open=accepts.above is not None)
    if kind is str:
        return click.STRING
    raise TypeError(f"no command-line option for a setting of type {kind!r}")


def settings_from(settings_class: type, values: dict[tuple[str, ...], object]):
    """``settings_class`` from option values by field path; embedded settings are built
    from theirs, and fields without an option keep their defaults."""
    given = {}
    for field in dataclasses.fields(settings_class):
        default = _default_of(field)
        if dataclasses.is_dataclass(default):
            inner = {path[1:]: value for path, value in values.items() if path[0] == field.name}
            given[field.name] = settings_from(type(default), inner)
        elif (field.name,) in values:
            given[field.name] = values[(field.name,)]
    return settings_class(**given)


class SettingsCommand(click.Command):
    """A command whose options are those of a settings class, and whose callback is given
    the settings built from them; what the settings refuse is a usage error.

    ``settings`` is "module:Class", imported when the command is used: the operator's settings
    live beside kopf, which takes seconds to import, and `modelrollout serve` starts often.
    """

    def __init__(self, *args, settings: str, **kwargs) -> None:
        self._settings_name = settings
        super().__init__(*args, **kwargs)

    @property
    def settings_class(self) -> type:
        module, _, name = self._settings_name.partition(":")
        return getattr(importlib.import_module(module), name)

    @property
    def params(self) -> list[click.Parameter]:
        # One list, built once: click adds its --help option by appending to it.
        if self._params is None:
            self._params = [*options_of(self.settings_class), *self._other_params]
        return self._params

    @params.setter
    def params(self, value: list[click.Parameter]) -> None:
        self._other_params, self._params = list(value), None

    def settings_of(self, params: dict):
        """The settings built from parsed values by option name; the settings' options are
        taken out of ``params``, the command's other parameters stay."""
        values = {option.path: params.pop(option.name)
                  for option in self.params if isinstance(option, SettingOption)}
        return settings_from(self.settings_class, values)

    def invoke(self, context: click.Context):
        try:
            settings = self.settings_of(context.params)
        except ValueError as exc:
            raise click.UsageError(str(exc), context) from None
        return context.invoke(self.callback, settings, **context.params)
