"""Typed settings: one place for every knob, each with its environment variable.

Precedence (highest first): keyword arguments, environment variables ``IDGRAPH_*`` (nested
fields with ``__``, e.g. ``IDGRAPH_GRPC__PORT=50052``), the TOML file passed to
:func:`load_settings` (or else named by ``IDGRAPH_CONFIG``), then the defaults below.

Each layer changes only what it names; it is merged over the layers below it:

- a section (``[linking]``, ``[grpc]``...) merges field by field;
- a map (``linking.identifier_rules``, ``survivorship.rules``, ``regions.country_regions``...)
  merges key by key: keys not named keep their value, and a named key whose entry is a
  section (an identifier rule) merges into that entry field by field;
- anything else replaces the value below it whole: numbers, strings, lists, and map
  entries that are maps themselves (``cassandra.region_datacenters.eu``: a replication
  map is one value, so naming one data centre cannot keep another by accident);
- an empty table empties a map (``domain_aliases = {}``).

Unknown names are refused at every level. Invalid settings fail at start with a
:class:`ConfigError` naming the dotted field path and where the value came from (the
file or the environment variable).

The defaults are the embedded engine: networkx graph, SQLite profile store, no server to
install.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args, get_origin

from pydantic import (
    BaseModel,
    SecretStr,
    ValidationError,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from idgraph.auth.settings import AuthSettings
from idgraph.console.settings import ConsoleSettings
from idgraph.core.errors import ConfigError
from idgraph.core.logs import LogSettings
from idgraph.core.metrics_endpoint import MetricsSettings
from idgraph.engine.settings import EngineSettings
from idgraph.service.settings import GrpcSettings
from idgraph.stream.settings import StreamSettings


class Settings(BaseSettings, EngineSettings):
    """Everything the engine, the CLI, the stream workers and the server need: the
    engine's settings plus the gRPC, access-control, Kafka, metrics and log sections."""

    model_config = SettingsConfigDict(
        env_prefix="IDGRAPH_", env_nested_delimiter="__", extra="forbid"
    )

    grpc: GrpcSettings = GrpcSettings()
    auth: AuthSettings = AuthSettings()
    stream: StreamSettings = StreamSettings()
    metrics: MetricsSettings = MetricsSettings()
    console: ConsoleSettings = ConsoleSettings()
    """``idgraph console``: listen address, the gRPC server it calls, session lifetimes."""
    log: LogSettings = LogSettings()
    """Log output of every command (:mod:`idgraph.core.logs`): ``log.format`` ``"text"``
    (default) or ``"json"`` (one object per line: ``ts``, ``level``, ``logger``,
    ``message``, ``process``, ``host``, ``thread``, ``exc_type``, ``exc``; no personal
    data), ``log.level`` (default ``INFO`` for ``idgraph worker``, else ``WARNING``).
    ``IDGRAPH_LOG__FORMAT=json``, ``IDGRAPH_LOG__LEVEL=INFO``."""

    @model_validator(mode="after")
    def _check_served(self) -> Settings:
        served = self.grpc.served_regions
        if served is not None:
            unknown = sorted(set(served) - set(self.regions.regions))
            if unknown:
                raise ValueError(f"grpc.served_regions: unknown regions {unknown}")
        for name, principal in self.auth.certificate_principals.items():
            unknown = sorted(set(principal.regions) - set(self.regions.regions))
            if unknown:
                raise ValueError(f"auth.certificate_principals.{name}.regions: unknown "
                                 f"regions {unknown}")
        return self

    @property
    def served_regions(self) -> list[str]:
        return list(self.grpc.served_regions or self.regions.regions)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """One source: the config file, the environment and the keyword arguments, each
        merged over the layers below it and the defaults (see the module docstring).

        pydantic-settings would validate a partial table on its own, so a map in it
        (``linking.identifier_rules``) would replace the whole default map.
        """
        layers: list[PydanticBaseSettingsSource] = []
        config = _CONFIG_FILE.get() or _env_config_file()
        if config is not None:
            layers.append(InitSettingsSource(settings_cls, init_kwargs=config.data))
        layers += [env_settings, init_settings]
        return (_LayeredSource(settings_cls, layers),)


# ---------------------------------------------------------------- merging layers


def _fields(value: Any) -> dict[str, Any]:
    """A section (model instance or mapping of its fields) as a new dict of its fields."""
    if isinstance(value, BaseModel):
        return {name: getattr(value, name) for name in type(value).model_fields}
    return dict(value) if isinstance(value, Mapping) else {}


def _is_section(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _merged(model: type[BaseModel], below: Any, given: Mapping[str, Any]) -> dict[str, Any]:
    """``given`` (a mapping of ``model``'s fields) merged over ``below`` (its value so far).

    A field ``given`` does not name keeps its value in ``below`` (or, absent there, its
    default); a named field merges by the rules of the module docstring. Unknown names are
    kept for validation to refuse with their path.
    """
    out = _fields(below)
    for name, value in given.items():
        field = model.model_fields.get(name)
        if field is None or not isinstance(value, Mapping):
            out[name] = value
            continue
        current = out[name] if name in out else _default(field)
        out[name] = _merged_value(field.annotation, current, value)
    return out


def _default(field: FieldInfo) -> Any:
    return field.get_default(call_default_factory=True)


def _merged_value(annotation: Any, current: Any, given: Mapping[str, Any]) -> Any:
    """The table ``given`` over ``current``, a value of type ``annotation``."""
    if _is_section(annotation):
        return _merged(annotation, current, given)
    if get_origin(annotation) is not dict or not isinstance(current, Mapping):
        return given
    if not given:
        return {}  # an empty table empties the map
    entry = get_args(annotation)[1]
    out = dict(current)
    for key, value in given.items():
        if _is_section(entry) and key in out and isinstance(value, Mapping):
            out[key] = _merged(entry, out[key], value)
        else:
            out[key] = value
    return out


class _LayeredSource(PydanticBaseSettingsSource):
    """Several sources as one, each layer merged over the ones before it."""

    def __init__(self, settings_cls: type[BaseSettings],
                 layers: Sequence[PydanticBaseSettingsSource]) -> None:
        super().__init__(settings_cls)
        self._layers = layers  # lowest precedence first

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ asks the layers

    def __call__(self) -> dict[str, Any]:
        state: dict[str, Any] = {}
        for layer in self._layers:
            state = _merged(self.settings_cls, state, layer())
        return state


# -------------------------------------------------------------------- loading


@dataclass(frozen=True, slots=True)
class _ConfigFile:
    """A parsed TOML settings file."""

    path: Path
    data: dict[str, Any]


_CONFIG_FILE: ContextVar[_ConfigFile | None] = ContextVar("idgraph_config_file", default=None)
"""The file :func:`load_settings` read, for the settings it is building."""


def _read_config_file(path: str | Path) -> _ConfigFile:
    """Parse a TOML settings file; :class:`ConfigError` naming the path if it cannot be."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            return _ConfigFile(path, tomllib.load(fh))
    except OSError as exc:
        raise ConfigError(f"config file {str(path)!r}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {str(path)!r}: invalid TOML: {exc}") from None


def _env_config_file() -> _ConfigFile | None:
    path = os.environ.get("IDGRAPH_CONFIG")
    return _read_config_file(path) if path else None


def load_settings(config_file: str | Path | None = None, **overrides: object) -> Settings:
    """Build settings from ``overrides``, the environment, ``config_file`` (else the file
    named by ``IDGRAPH_CONFIG``) and the defaults.

    Raises :class:`ConfigError` naming the file when it cannot be read or parsed, or
    naming each invalid or unknown setting by its dotted path and the layer that gave it
    (the file, an environment variable or a keyword argument), never by its value.
    """
    config = _read_config_file(config_file) if config_file is not None else _env_config_file()
    token = _CONFIG_FILE.set(config)
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(_problem(err["loc"], err["type"], err["msg"], config, overrides)
                             for err in exc.errors())
        raise ConfigError(f"invalid settings: {problems}") from None
    finally:
        _CONFIG_FILE.reset(token)


def _problem(loc: tuple[int | str, ...], kind: str, msg: str, config: _ConfigFile | None,
             overrides: Mapping[str, object]) -> str:
    """``dotted.path: what is wrong (where it came from)``; never the value itself."""
    path = ".".join(str(p) for p in loc) or "settings"
    what = "unknown setting" if kind == "extra_forbidden" else msg
    where = _origin(loc, config, overrides)
    return f"{path}: {what}" + (f" ({where})" if where else "")


def _origin(loc: tuple[int | str, ...], config: _ConfigFile | None,
            overrides: Mapping[str, object]) -> str:
    """Which layer names ``loc``, highest precedence first; "" when none does."""
    if not loc:
        return ""
    if _names(overrides, loc):
        return "keyword argument"
    names = [str(p) for p in loc]
    env = {k.lower(): k for k in os.environ}
    for n in range(len(names), 0, -1):  # a JSON value holds the deeper names
        var = env.get(("IDGRAPH_" + "__".join(names[:n])).lower())
        if var is not None:
            return f"environment variable {var}"
    if config is not None and _names(config.data, loc):
        return f"in {config.path}"
    return ""


def _names(data: object, loc: tuple[int | str, ...]) -> bool:
    """Whether nested mappings and lists ``data`` hold the path ``loc``."""
    for part in loc:
        if isinstance(data, Mapping):
            held = part in data
        else:
            held = isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data)
        if not held:
            return False
        data = data[part]  # type: ignore[index]
    return True


# ---------------------------------------------------------------- writing a settings file


def settings_toml(settings: Settings) -> str:
    """``settings`` as a TOML settings file that loads back to equal settings, secrets
    included (write it only to a file the owner alone can read: :func:`write_settings_file`).
    Fields whose value is None are left out (None is each such field's default)."""
    import tomli_w

    def plain(value: Any) -> Any:
        if isinstance(value, SecretStr):
            return value.get_secret_value()
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, Mapping):
            return {str(k): plain(v) for k, v in value.items() if v is not None}
        if isinstance(value, list | tuple | set | frozenset):
            return [plain(v) for v in value]
        return value

    return tomli_w.dumps(plain(settings.model_dump(mode="python")))


def write_settings_file(settings: Settings, path: Path) -> Path:
    """Write :func:`settings_toml` to ``path``, readable and writable by the owner only
    (it holds passwords and tokens); returns the path."""
    path = Path(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(settings_toml(settings))
    os.chmod(path, 0o600)  # also when the file existed with wider permissions
    return path
