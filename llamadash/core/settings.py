"""The user's settings: declared once as data, stored as text in the database's ``metadata`` table.

Every setting is declared once, as a field of the frozen dataclass :class:`Settings`: its type is
the annotation, its default and the rest (metadata key, title, help, dialog section, limits, unit)
are what :func:`setting` puts in the field's metadata. :data:`SPECS` is made from those fields, in
the manner of Picard's ``options.py``: the settings dialog, loading, saving and validation all read
that one table. A value that was never stored is its default. A stored value that cannot be parsed (a hand
edit, an older llamadash) falls back to the default with a log message instead of failing the start.

Pure Python, no Qt::

    from llamadash.core import database, settings

    current = settings.load_settings(database)
    settings.save_settings(current.replace(theme_preference="dark"), database, previous=current)
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from llamadash.core.endpoint_address import EndpointConfigError, check_bind, parse_bind
from llamadash.core.llama_server import METADATA_KEY as LLAMA_SERVER_PATH_KEY
from llamadash.core.params import FALSE_WORDS, TRUE_WORDS

__all__ = [
    "HISTORY_MAX_MINUTES",
    "HISTORY_MIN_MINUTES",
    "REQUEST_RETENTION_MAX_DAYS",
    "REQUEST_RETENTION_MIN_DAYS",
    "SAMPLE_INTERVAL_MAX_S",
    "SAMPLE_INTERVAL_MIN_S",
    "SPECS",
    "THEMES",
    "MetadataStore",
    "SettingSpec",
    "Settings",
    "SettingsError",
    "check_value",
    "load_settings",
    "read_setting",
    "save_settings",
    "setting",
    "validate_settings",
]

_log = logging.getLogger(__name__)

#: The sampling interval's limits in seconds (the sampler refuses anything else).
SAMPLE_INTERVAL_MIN_S = 0.25
SAMPLE_INTERVAL_MAX_S = 10.0
#: The chart window's limits in minutes. Metrics are kept in the database for the same window, so
#: the upper limit also bounds the database (3,600 rows at 1 Hz).
HISTORY_MIN_MINUTES = 1
HISTORY_MAX_MINUTES = 60
#: How many days of request records the database may be told to keep (the Activity view's history).
REQUEST_RETENTION_MIN_DAYS = 1
REQUEST_RETENTION_MAX_DAYS = 365
#: ``theme_preference`` values (the seed database predefines the key with these).
THEMES = ("light", "dark", "system")


class SettingsError(ValueError):
    """A setting's value is not allowed; the message is meant for the user and names the setting."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name
        self.message = message


class MetadataStore(Protocol):
    """Where settings live: the :mod:`llamadash.core.database` module satisfies this."""

    def get_metadata(self, key: str) -> str | None: ...

    def set_metadata(self, key: str, value: str | float) -> None: ...

    def delete_metadata(self, key: str) -> bool: ...


@dataclass(frozen=True)
class SettingSpec:
    """One setting's declaration, as :data:`SPECS` lists it (made from the fields of :class:`Settings`).

    Attributes:
        name: The field of :class:`Settings`.
        key: The ``metadata`` key it is stored under.
        kind: ``bool``, ``int``, ``float``, ``str``, ``choice``, ``file`` (an executable), ``dir``,
            ``address`` (``[HOST:]PORT`` or empty) or ``secret`` (text the dialog does not show).
        default: The value when nothing is stored.
        title: The label the settings dialog shows.
        help: One sentence for the dialog's tooltip.
        group: The settings dialog's section that shows it.
        minimum: The smallest number allowed (numbers only).
        maximum: The largest number allowed (numbers only).
        choices: The allowed values (``choice`` only).
        unit: What a number counts, as the dialog shows it (``s``, ``min``, ``°C``, ``%``).
    """

    name: str
    key: str
    kind: str
    default: Any
    title: str
    help: str = ""
    group: str = ""
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    unit: str = ""


#: The key of a :class:`Settings` field's metadata that holds what :func:`setting` declared.
_DECLARED = "llamadash.setting"
#: The kind a field's annotation gives when :func:`setting` names none.
_KIND_OF_TYPE = {"bool": "bool", "int": "int", "float": "float", "str": "str"}


def setting(
    default: Any,
    *,
    title: str,
    help: str,
    group: str,
    kind: str | None = None,
    key: str | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    choices: tuple[str, ...] = (),
    unit: str = "",
) -> Any:
    """A field of :class:`Settings`: its default, and the rest of its declaration in the field's metadata.

    Args:
        default: The value when nothing is stored.
        title: The label the settings dialog shows.
        help: One sentence for the dialog's tooltip.
        group: The dialog's section.
        kind: ``file`` or ``dir`` for a path, ``address``, ``secret``; None: ``choice`` when ``choices`` are given, else the
            field's type (``bool``, ``int``, ``float``, ``str``).
        key: The ``metadata`` key; None: the field's name.
        minimum: The smallest number allowed (numbers only).
        maximum: The largest number allowed (numbers only).
        choices: The allowed values.
        unit: What a number counts.
    """
    declared = {
        "kind": kind or ("choice" if choices else None),
        "key": key,
        "title": title,
        "help": help,
        "group": group,
        "minimum": minimum,
        "maximum": maximum,
        "choices": choices,
        "unit": unit,
    }
    return dataclasses.field(default=default, metadata={_DECLARED: declared})


@dataclass(frozen=True)
class Settings:
    """Every setting with its value, each declared once here: type, default, title, limits.

    The declarations (:func:`setting`) become :data:`SPECS`, which the dialog, loading, saving and
    validation read.
    """

    llama_server_path: str = setting(
        "",
        kind="file",
        key=LLAMA_SERVER_PATH_KEY,
        title="llama-server binary",
        help="The llama-server executable to run; empty finds one on PATH and in the usual places.",
        group="llama-server",
    )
    models_dir: str = setting(
        "",
        kind="dir",
        title="Models directory",
        help="Where your .gguf files are; the disk chart shows this disk. Empty: the data directory's disk.",
        group="llama-server",
    )
    sample_interval_s: float = setting(
        1.0,
        title="Sample interval",
        help="Seconds between two metrics samples.",
        group="Monitoring",
        minimum=SAMPLE_INTERVAL_MIN_S,
        maximum=SAMPLE_INTERVAL_MAX_S,
        unit="s",
    )
    history_minutes: int = setting(
        10,
        title="History window",
        help="Minutes of metrics the charts show and the database keeps.",
        group="Monitoring",
        minimum=HISTORY_MIN_MINUTES,
        maximum=HISTORY_MAX_MINUTES,
        unit="min",
    )
    request_retention_days: int = setting(
        7,
        title="Request history",
        help="Days of request records (the Activity view) the database keeps; daily totals are kept a year.",
        group="Monitoring",
        minimum=REQUEST_RETENTION_MIN_DAYS,
        maximum=REQUEST_RETENTION_MAX_DAYS,
        unit="days",
    )
    theme_preference: str = setting(
        "system",
        title="Theme",
        help="Light, dark, or whatever the desktop uses.",
        group="Appearance",
        choices=THEMES,
    )
    chart_theme_follows_app: bool = setting(
        True,
        title="Charts follow the app theme",
        help="Off: charts keep pyqtgraph's classic black background whatever the theme.",
        group="Appearance",
    )
    start_minimized: bool = setting(
        False,
        title="Start minimized to the tray",
        help="Open with the window hidden in the system tray (minimized where there is no tray).",
        group="Behaviour",
    )
    close_to_tray: bool = setting(
        False,
        title="Close to the tray",
        help="Closing the window hides it in the tray; quit from the tray or the File menu.",
        group="Behaviour",
    )
    stop_on_quit: bool = setting(
        True,
        title="Stop instances on quit",
        help="Stop every llama-server llamadash started when llamadash quits.",
        group="Behaviour",
    )
    start_at_login: bool = setting(
        False,
        title="Start at login",
        help="Open llamadash (minimized to the tray) when you log in to this computer.",
        group="Behaviour",
    )
    notifications: bool = setting(
        True,
        title="Tray notifications",
        help="Tell me when a model is ready, crashes, or a threshold below is crossed.",
        group="Notifications",
    )
    gpu_temp_alert_c: int = setting(
        85,
        title="GPU temperature alert",
        help="Notify when the GPU reaches this temperature (°C); again only after it cooled 5 °C.",
        group="Notifications",
        minimum=40,
        maximum=120,
        unit="°C",
    )
    vram_alert_percent: int = setting(
        95,
        title="VRAM alert",
        help="Notify when this much of the GPU memory is in use (%); again only after it fell 5 points.",
        group="Notifications",
        minimum=10,
        maximum=100,
        unit="%",
    )
    ram_alert_percent: int = setting(
        95,
        title="RAM alert",
        help="Notify when this much of the system memory is in use (%); again only after it fell 5 points.",
        group="Notifications",
        minimum=10,
        maximum=100,
        unit="%",
    )
    router_port: int = setting(
        8090,
        title="Router port",
        help="The one port of the library router (Serve the library): clients use http://127.0.0.1:PORT/v1.",
        group="Router",
        minimum=1,
        maximum=65535,
        unit="TCP",
    )
    router_max_models: int = setting(
        4,
        title="Models loaded at once",
        help="The most models the router keeps loaded; a request for another unloads the least recently "
        "used one. 0: no limit.",
        group="Router",
        minimum=0,
        maximum=256,
        unit="models",
    )
    router_autoload: bool = setting(
        True,
        title="Load a model when a request names it",
        help="Off: a request for a model that is not loaded fails until you load it (Load in Instances).",
        group="Router",
    )
    router_idle_s: int = setting(
        0,
        title="Idle time before a model sleeps",
        help="Seconds without requests after which a loaded model is put to sleep (its memory freed; the "
        "next request wakes it). 0: never.",
        group="Router",
        minimum=0,
        maximum=7 * 24 * 3600,
        unit="s",
    )

    prometheus_address: str = setting(
        "",
        kind="address",
        title="Prometheus endpoint",
        help="Serve Prometheus metrics at http://[HOST:]PORT/metrics, e.g. 9464 (this machine only) or "
        "0.0.0.0:9464 (needs the token); empty: off.",
        group="Prometheus",
    )
    prometheus_token: str = setting(
        "",
        kind="secret",
        title="Bearer token",
        help="Scrapers must send 'Authorization: Bearer TOKEN'; required on any address but loopback.",
        group="Prometheus",
    )

    def replace(self, **changes: Any) -> Settings:
        """A copy with some values changed (not validated: see :func:`validate_settings`)."""
        return dataclasses.replace(self, **changes)

    def changed_from(self, other: Settings) -> set[str]:
        """The names of the settings whose values differ from ``other``'s."""
        return {spec.name for spec in SPECS if getattr(self, spec.name) != getattr(other, spec.name)}


def _spec_of(field: dataclasses.Field[Any]) -> SettingSpec:
    declared = dict(field.metadata[_DECLARED])
    type_name = field.type if isinstance(field.type, str) else field.type.__name__
    kind = declared.pop("kind") or _KIND_OF_TYPE[type_name]
    key = declared.pop("key") or field.name
    return SettingSpec(name=field.name, key=key, kind=kind, default=field.default, **declared)


#: Every setting's declaration, in the order of :class:`Settings`' fields (the dialog's order).
SPECS: tuple[SettingSpec, ...] = tuple(_spec_of(field) for field in dataclasses.fields(Settings))
_BY_NAME = {spec.name: spec for spec in SPECS}


def spec(name: str) -> SettingSpec:
    """The declaration of the setting ``name``.

    Raises:
        KeyError: There is no such setting.
    """
    return _BY_NAME[name]


# ------------------------------------------------------------------------------------------------
# checking values
def check_value(name: str, value: Any) -> Any:
    """The value in its proper type if the setting ``name`` allows it.

    Paths are expanded (``~``) and checked on disk: a binary must be an executable file, a models
    directory an existing directory; an empty path means "not set".

    Raises:
        SettingsError: The value is not allowed; the message says why in words for the user.
        KeyError: There is no such setting.
    """
    item = _BY_NAME[name]
    if item.kind == "bool":
        if isinstance(value, bool):
            return value
        raise SettingsError(name, f"{item.title} must be on or off, not {value!r}")
    if item.kind in ("int", "float"):
        return _check_number(item, value)
    if not isinstance(value, str):
        raise SettingsError(name, f"{item.title} must be text, not {value!r}")
    text = value.strip()
    if item.kind == "choice":
        if text not in item.choices:
            raise SettingsError(name, f"{item.title} must be one of {', '.join(item.choices)}, not {value!r}")
        return text
    if item.kind == "file":
        return _check_executable(item, text)
    if item.kind == "dir":
        return _check_directory(item, text)
    if item.kind == "address" and text:
        try:
            host, port = parse_bind(text)
        except EndpointConfigError as exc:
            raise SettingsError(name, f"{item.title}: {exc}") from None
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return text


def _check_number(item: SettingSpec, value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SettingsError(item.name, f"{item.title} must be a number, not {value!r}")
    number: int | float
    if item.kind == "int":
        if isinstance(value, float) and not value.is_integer():
            raise SettingsError(item.name, f"{item.title} must be a whole number, not {value!r}")
        number = int(value)
    else:
        number = float(value)
    assert item.minimum is not None and item.maximum is not None
    if not item.minimum <= number <= item.maximum:
        raise SettingsError(
            item.name, f"{item.title} must be from {item.minimum:g} to {item.maximum:g}, not {number:g}"
        )
    return number


def _check_executable(item: SettingSpec, text: str) -> str:
    if not text:
        return ""
    path = Path(text).expanduser()
    if not path.exists():
        raise SettingsError(item.name, f"{item.title}: {path} does not exist")
    if path.is_dir():
        raise SettingsError(item.name, f"{item.title}: {path} is a folder; choose the executable file")
    if not os.access(path, os.X_OK):
        raise SettingsError(item.name, f"{item.title}: {path} is not executable")
    return str(path)


def _check_directory(item: SettingSpec, text: str) -> str:
    if not text:
        return ""
    path = Path(text).expanduser()
    if not path.is_dir():
        raise SettingsError(item.name, f"{item.title}: {path} is not an existing folder")
    return str(path)


def validate_settings(settings: Settings, names: Iterable[str] | None = None) -> Settings:
    """Check the settings ``names`` (default: all) and return them normalised.

    Raises:
        SettingsError: The first value that is not allowed, in :data:`SPECS` order.
    """
    wanted = set(_BY_NAME) if names is None else set(names)
    changes = {
        item.name: check_value(item.name, getattr(settings, item.name))
        for item in SPECS
        if item.name in wanted
    }
    checked = settings.replace(**changes)
    if wanted & {"prometheus_address", "prometheus_token"} and checked.prometheus_address:
        try:  # on another address than loopback, a token is not optional
            check_bind(checked.prometheus_address, checked.prometheus_token)
        except EndpointConfigError as exc:
            raise SettingsError("prometheus_address", str(exc)) from None
    return checked


# ------------------------------------------------------------------------------------------------
# reading and writing
def _parse(item: SettingSpec, text: str) -> Any:
    """A stored text back in the setting's type; raises ValueError when it cannot be."""
    if item.kind == "bool":
        lowered = text.strip().lower()
        if lowered in TRUE_WORDS:
            return True
        if lowered in FALSE_WORDS or not lowered:  # an empty value is "off", as it always was
            return False
        raise ValueError(f"not a yes/no value: {text!r}")
    if item.kind == "int":
        return _check_number(item, int(float(text)))
    if item.kind == "float":
        return _check_number(item, float(text))
    if item.kind == "choice":
        if text.strip() not in item.choices:
            raise ValueError(f"not one of {item.choices}: {text!r}")
        return text.strip()
    # Paths are not checked on load: a binary that went missing is reported where it is used, and
    # the user must still see (and be able to fix) what is stored.
    return text


def _format(item: SettingSpec, value: Any) -> str:
    if item.kind == "bool":
        return "1" if value else "0"
    if item.kind == "float":
        return repr(float(value))
    return str(value)


def load_settings(store: MetadataStore) -> Settings:
    """The stored settings; a value never stored, or one that cannot be read, is its default."""
    values: dict[str, Any] = {}
    for item in SPECS:
        text = store.get_metadata(item.key)
        if text is None:
            continue
        try:
            values[item.name] = _parse(item, text)
        except (ValueError, SettingsError) as exc:
            _log.warning(
                "ignoring the stored setting %s=%r (%s); using %r", item.key, text, exc, item.default
            )
    return Settings(**values)


def read_setting(store: MetadataStore, name: str) -> Any:
    """One setting's stored value; its default when it was never stored or cannot be read.

    Raises:
        KeyError: There is no such setting.
    """
    item = _BY_NAME[name]
    text = store.get_metadata(item.key)
    if text is None:
        return item.default
    try:
        return _parse(item, text)
    except (ValueError, SettingsError):
        return item.default


def save_settings(settings: Settings, store: MetadataStore, *, previous: Settings | None = None) -> Settings:
    """Validate and store the settings; returns them normalised.

    Args:
        settings: The values to store.
        store: Where to store them.
        previous: The settings as they were; only the values that differ are validated and written,
            so a binary that went missing since it was chosen does not block changing the theme.

    Raises:
        SettingsError: A value is not allowed; nothing was written.
    """
    names = [item.name for item in SPECS] if previous is None else sorted(settings.changed_from(previous))
    settings = validate_settings(settings, names)
    for name in names:
        item = _BY_NAME[name]
        value = getattr(settings, name)
        if item.kind in ("file", "dir") and value == "":
            store.delete_metadata(item.key)  # "not set", which the CLI also reads as absent
        else:
            store.set_metadata(item.key, _format(item, value))
    return settings
