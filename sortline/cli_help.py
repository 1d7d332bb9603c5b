"""``--help`` written from the settings models: placeholders, allowed values, bounds, defaults, variables.

pydantic-settings builds each command's argparse parser from its settings model.
:func:`cli_source` hands it :func:`_readable_argument` as its ``add_argument_method``, which
rewrites every flag before argparse sees it, from the field itself:

- the placeholder says what to type (``URL``, ``DIR``, ``N``, ``ID,...``), not a Python type;
- the help text ends with the field's bounds or allowed values, its default (none when it has
  none, never ``null``; a URL's password hidden) and the environment variable(s) it is read from.

:func:`choice_spellings` and :func:`canonical_choice` let settings accept those values in any case.
"""

from __future__ import annotations

import inspect
import re
import types
from argparse import ArgumentParser
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import SecretStr
from pydantic.fields import FieldInfo, PydanticUndefined
from pydantic_settings import BaseSettings, CliSettingsSource

_BOUND_WORDS = (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))
#: Patterns people meet often, in words; any other pattern is shown as it is.
_PATTERN_WORDS = {r"^[A-Za-z0-9_-]+$": "letters, digits, _ and -"}
#: What pydantic-settings appends to a help text when asked to show the environment variables.
_ENV_SUFFIX = re.compile(r"\s*\[env: ([^\]]+)\]$")


def bounds_text(field: FieldInfo) -> str:
    """``[>= 1, <= 256]``: a field's numeric bounds, lengths and pattern, or '' without any."""
    words = _constraint_words(field.metadata, _is_text(field.annotation))
    item = _list_item(field.annotation)
    if item is not None:
        item_words = _constraint_words(_metadata_of(item), _is_text(item))
        words += [f"each {'; '.join(item_words)}"] if item_words else []
    return f"[{', '.join(words)}]" if words else ""


def _constraint_words(metadata: list[Any], text: bool) -> list[str]:
    words = [
        f"{word} {value}"
        for constraint in metadata
        for name, word in _BOUND_WORDS
        if (value := getattr(constraint, name, None)) is not None
    ]
    low = next((m.min_length for m in metadata if getattr(m, "min_length", None) is not None), None)
    high = next((m.max_length for m in metadata if getattr(m, "max_length", None) is not None), None)
    unit = "characters" if text else "values"
    if low is not None and high is not None:
        words.append(f"{low}-{high} {unit}")
    elif high is not None:
        words.append(f"at most {high} {unit}")
    elif low is not None and low > 1:
        words.append(f"at least {low} {unit}")
    pattern = next((m.pattern for m in metadata if getattr(m, "pattern", None)), None)
    if pattern:
        words.append(_PATTERN_WORDS.get(pattern, f"matching {pattern}"))
    return words


def choice_values(annotation: Any) -> tuple[str, ...]:
    """The values a Literal or Enum field (or a list of them) accepts; () for any other field."""
    annotation = _unwrap(annotation)
    item = _list_item(annotation)
    if item is not None:
        return choice_values(item)
    if get_origin(annotation) is Literal:
        return tuple(str(value) for value in get_args(annotation))
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return tuple(str(member.value) for member in annotation)
    return ()


def choice_spellings(annotation: Any) -> dict[str, str]:
    """Each accepted value (and an Enum member's name) in lower case, to the value as it is spelled."""
    spellings = {value.casefold(): value for value in choice_values(annotation)}
    item = _list_item(annotation)
    enum = _unwrap(item if item is not None else annotation)
    if isinstance(enum, type) and issubclass(enum, Enum):
        spellings |= {name.casefold(): str(member.value) for name, member in enum.__members__.items()}
    return spellings


def canonical_choice(value: Any, spellings: dict[str, str]) -> Any:
    """``value`` as the choice is spelled when it names one in another case (``debug`` -> ``DEBUG``)."""
    if isinstance(value, str):
        return spellings.get(value.casefold(), value)
    if isinstance(value, list | tuple):
        return type(value)(canonical_choice(item, spellings) for item in value)
    return value


def cli_source(settings_class: type[BaseSettings], prog: str) -> CliSettingsSource:
    """The CLI source of ``settings_class`` whose ``--help`` is written by this module."""
    return CliSettingsSource(
        settings_class,
        cli_prog_name=prog,
        cli_show_env_vars=True,
        add_argument_method=_readable_argument(settings_class),
    )


def _readable_argument(settings_class: type[BaseSettings]) -> Callable[..., Any]:
    fields = settings_class.model_fields

    def add_argument(parser: ArgumentParser, *names: str, **kwargs: Any) -> Any:
        parser.description = plain_text(inspect.cleandoc(parser.description or ""))
        field = fields.get(kwargs.get("dest", ""))
        if field is not None:
            names = _own_flags(names)
            env = _ENV_SUFFIX.search(kwargs.get("help", ""))
            kwargs["help"] = field_help(field, env.group(1).split(" | ") if env else [])
            if "metavar" in kwargs:
                kwargs["metavar"] = placeholder(kwargs["dest"], field, variadic="nargs" in kwargs)
        return ArgumentParser.add_argument(parser, *names, **kwargs)

    return add_argument


def _own_flags(names: tuple[str, ...]) -> tuple[str, ...]:
    """The flag and its kebab-case aliases; not the environment variable names of a validation alias
    (``--AMQP-URL``, ``--sortline-amqp-url``), which only clutter the help."""
    kept = tuple(n for n in names if n == n.lower() and not n.startswith("--sortline-"))
    return kept or names[:1]


def field_help(field: FieldInfo, env_names: list[str]) -> str:
    """Description, bounds or allowed values, then ``(default: X; env SORTLINE_X)``."""
    parts = [plain_text(field.description or ""), bounds_text(field)]
    item = _list_item(field.annotation)
    if item is not None and (choices := choice_values(item)):
        parts.append(f"[each one of: {', '.join(choices)}]")
    notes = []
    if field.is_required():
        notes.append("required")
    elif (default := default_text(field.default)) is not None:
        notes.append(f"default: {default}")
    variables = list(dict.fromkeys(name.upper() for name in env_names))
    if variables:
        notes.append(f"env {' or '.join(variables)}")
    parts.append(f"({'; '.join(notes)})" if notes else "")
    return " ".join(part for part in parts if part).replace("%", "%%")


def default_text(default: Any) -> str | None:
    """A default as it would be typed on the command line; None when there is none to show."""
    if default is None or default is PydanticUndefined:
        return None
    if isinstance(default, SecretStr):
        from sortline.settings import redact_url  # settings imports this module

        return redact_url(default.get_secret_value())
    if isinstance(default, bool):
        return "on" if default else "off"
    if isinstance(default, Enum):
        return str(default.value)
    if isinstance(default, list | tuple):
        return ",".join(str(item) for item in default) if default else "none"
    if isinstance(default, dict):
        return ",".join(f"{key}={value}" for key, value in default.items()) if default else "none"
    return str(default)


def placeholder(name: str, field: FieldInfo, variadic: bool = False) -> str:
    """What to type after the flag: ``{a,b}`` for choices, else a word for the kind of value."""
    extra = field.json_schema_extra
    if isinstance(extra, dict) and isinstance(extra.get("metavar"), str):
        return extra["metavar"]
    annotation = _unwrap(field.annotation)
    item = _list_item(annotation)
    if item is not None:
        singular = name.removesuffix("s")
        word = singular.upper() if choice_values(item) else _word(singular, item, field)
        return word if variadic else f"{word},..."
    if get_origin(annotation) is tuple:
        return ",".join(_word(name, arg, field) for arg in get_args(annotation))
    choices = choice_values(annotation)
    return f"{{{','.join(choices)}}}" if choices else _word(name, field.annotation, field)


def _word(name: str, annotation: Any, field: FieldInfo) -> str:
    pattern = _pattern_of(annotation) or _pattern(field)  # before Annotated is unwrapped
    annotation = _unwrap(annotation)
    if annotation is SecretStr:
        return "URL"
    if annotation is Path:
        return {"dir": "DIR", "file": "FILE", "csv": "FILE"}.get(name.rsplit("_", 1)[-1], "PATH")
    if annotation is int:
        return "N"
    if annotation is float:
        return "NUMBER"
    if pattern in _PATTERN_WORDS:
        return "ID"
    return name.rsplit("_", 1)[-1].upper()


def plain_text(text: str | None) -> str | None:
    """Docstring markup (````name````) as plain text, for people reading ``--help``."""
    return text.replace("``", "") if text else text


def _unwrap(annotation: Any) -> Any:
    """``X | None`` and ``Annotated[X, ...]`` as ``X``."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
            continue
        if origin in (Union, types.UnionType):
            args = [arg for arg in get_args(annotation) if arg is not type(None)]
            if len(args) == 1:
                annotation = args[0]
                continue
        return annotation


def _list_item(annotation: Any) -> Any | None:
    annotation = _unwrap(annotation)
    if get_origin(annotation) in (list, set, frozenset):
        return get_args(annotation)[0]
    args = get_args(annotation)
    if get_origin(annotation) is tuple and len(args) == 2 and args[1] is Ellipsis:
        return args[0]
    return None


def _metadata_of(annotation: Any) -> list[Any]:
    if get_origin(annotation) is not Annotated:
        return []
    return [
        constraint
        for extra in get_args(annotation)[1:]
        for constraint in (getattr(extra, "metadata", None) or [extra])
    ]


def _is_text(annotation: Any) -> bool:
    return _unwrap(annotation) is str


def _pattern(field: FieldInfo) -> str | None:
    return next((m.pattern for m in field.metadata if getattr(m, "pattern", None)), None)


def _pattern_of(annotation: Any) -> str | None:
    return next((m.pattern for m in _metadata_of(annotation) if getattr(m, "pattern", None)), None)
