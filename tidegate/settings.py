"""The command line's settings: flags over the environment over the config file, read once."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import ClassVar

from connectors.ftp_settings import FtpSettings
from connectors.notifications.settings import NotifySettings
from streams.core.config_values import (
    SettingError,
    Values,
    read_float,
    read_port,
    read_str,
    read_time,
)
from streams.kafka.settings import KafkaSettings
from tidegate.config_file import ConfigFile, ConfigFileError, key_of, read_config_file

# The settings that also have a flag: variable -> flag (its argparse dest is the flag's name
# with underscores). Such flags have no default: left out, they are absent from the merged
# values, so the environment, the config file or the group's default applies.
FLAGS: dict[str, str] = {
    "TIDEGATE_DATA": "--data",
    "TIDEGATE_HOST": "--host",
    "TIDEGATE_SFTP_PORT": "--sftp-port",
    "TIDEGATE_HTTP_PORT": "--http-port",
    "TIDEGATE_SETTLE_SECONDS": "--settle",
    "TIDEGATE_FTP_PORT": "--ftp-port",
    "TIDEGATE_FTP_PASSIVE_PORTS": "--ftp-passive-ports",
    "TIDEGATE_FTP_MASQUERADE_ADDRESS": "--ftp-masquerade-address",
    "TIDEGATE_FTP_CERT": "--ftp-cert",
    "TIDEGATE_FTP_KEY": "--ftp-key",
    "TIDEGATE_FTP_ALLOW_PLAIN": "--ftp-allow-plain",
    "TIDEGATE_S3_INTERVAL": "--s3-interval",
    "TIDEGATE_DRAIN_SECONDS": "--drain-seconds",
    "TIDEGATE_LOGIN_TIMEOUT": "--login-timeout",
    "TIDEGATE_IDLE_TIMEOUT": "--idle-timeout",
    "TIDEGATE_BROKER": "--broker",
    "TIDEGATE_PARTITIONS": "--partitions",
    "TIDEGATE_STATE": "--state-dir",
    "TIDEGATE_METRICS_PORT": "--metrics-port",
}
CONFIG_VARIABLE = "TIDEGATE_CONFIG"  # the config file when `--config` is not given


def dest_of(flag: str) -> str:
    return flag.removeprefix("--").replace("-", "_")


class SettingValues(dict[str, str]):
    """The merged text of the settings (variable -> text) and where each value came from."""

    def __init__(self) -> None:
        super().__init__()
        self.origins: dict[str, str] = {}

    def put(self, name: str, text: str, origin: str) -> None:
        self[name] = text
        self.origins[name] = origin


def settings_values(
    args: argparse.Namespace, environ: Mapping[str, str], config: ConfigFile | None
) -> SettingValues:
    """One mapping of every setting's text: a flag wins over the environment, which wins over
    the config file; what none of them sets is absent (its group's default applies)."""
    values = SettingValues()
    if config is not None:
        for name, text in config.values.items():
            values.put(name, text, f"{key_of(name)} in {config.path}")
    for name, text in environ.items():
        if name.startswith("TIDEGATE_"):
            values.put(name, text, f"the environment variable {name}")
    for name, flag in FLAGS.items():
        given = getattr(args, dest_of(flag), None)
        if given is not None:
            values.put(name, "true" if given is True else str(given), f"the flag {flag}")
    return values


@dataclass(frozen=True, slots=True)
class RunSettings:
    """`tidegate run`'s servers: addresses, ports, delays (the FTP drop's are its own)."""

    host: str = "127.0.0.1"
    sftp_port: int = 2222
    http_port: int = 8080
    settle_seconds: float = 2.0  # after an upload completes, before it is handed over
    s3_interval: float = 30.0
    drain_seconds: float = 10.0
    login_timeout: float = 60.0  # SFTP (and FTP, in `ftp`): seconds to log in (0: never)
    idle_timeout: float = 300.0  # seconds without a request before a session is closed
    ftp: FtpSettings | None = field(default_factory=FtpSettings)  # None: no FTP drop

    NAMES: ClassVar[tuple[str, ...]] = tuple(
        dict.fromkeys(
            (
                "TIDEGATE_HOST",
                "TIDEGATE_SFTP_PORT",
                "TIDEGATE_HTTP_PORT",
                "TIDEGATE_SETTLE_SECONDS",
                "TIDEGATE_S3_INTERVAL",
                "TIDEGATE_DRAIN_SECONDS",
                "TIDEGATE_LOGIN_TIMEOUT",
                "TIDEGATE_IDLE_TIMEOUT",
                *FtpSettings.NAMES,
            )
        )
    )

    @classmethod
    def from_values(cls, values: Values) -> RunSettings:
        return cls(
            host=read_str(values, "TIDEGATE_HOST", "127.0.0.1"),
            sftp_port=read_port(values, "TIDEGATE_SFTP_PORT", 2222),
            http_port=read_port(values, "TIDEGATE_HTTP_PORT", 8080),
            settle_seconds=read_float(values, "TIDEGATE_SETTLE_SECONDS", 2.0, minimum=0),
            s3_interval=read_float(values, "TIDEGATE_S3_INTERVAL", 30.0, minimum=0),
            drain_seconds=read_float(values, "TIDEGATE_DRAIN_SECONDS", 10.0, minimum=0),
            login_timeout=read_float(values, "TIDEGATE_LOGIN_TIMEOUT", 60.0, minimum=0),
            idle_timeout=read_float(values, "TIDEGATE_IDLE_TIMEOUT", 300.0, minimum=0),
            ftp=FtpSettings.from_values(values),
        )


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting of the command line, built once in `main` and passed to the commands."""

    data: Path = Path("data")
    progress_seconds: float = 5.0  # `import`: between plain progress lines (not a terminal)
    now: datetime | None = None  # `worker`: a fixed processing time (tests, replays)
    run: RunSettings = field(default_factory=RunSettings)
    notify: NotifySettings = field(default_factory=NotifySettings)
    kafka: KafkaSettings = field(default_factory=KafkaSettings)  # the Kafka runtime's

    NAMES: ClassVar[tuple[str, ...]] = (
        "TIDEGATE_DATA",
        "TIDEGATE_PROGRESS_SECONDS",
        "TIDEGATE_NOW",
        *RunSettings.NAMES,
        *NotifySettings.NAMES,
        *KafkaSettings.NAMES,
    )

    @classmethod
    def from_values(cls, values: Values) -> Settings:
        return cls(
            data=Path(read_str(values, "TIDEGATE_DATA", "") or "data"),
            progress_seconds=read_float(values, "TIDEGATE_PROGRESS_SECONDS", 5.0, minimum=0),
            now=read_time(values, "TIDEGATE_NOW"),
            run=RunSettings.from_values(values),
            notify=NotifySettings.from_values(values),
            kafka=KafkaSettings.from_values(values),
        )


class SettingsError(ValueError):
    """A setting that stops the command before it does anything; the message is one line
    naming the setting, its value and where the value came from."""


def build_settings(
    args: argparse.Namespace, environ: Mapping[str, str], config_path: str | None
) -> Settings:
    """The settings from the parsed flags, the environment and the config file
    (`config_path`, else `TIDEGATE_CONFIG`, else none)."""
    path = config_path or environ.get(CONFIG_VARIABLE) or None
    try:
        config = read_config_file(Path(path), Settings.NAMES) if path else None
    except ConfigFileError as exc:
        raise SettingsError(str(exc)) from None
    values = settings_values(args, environ, config)
    try:
        return Settings.from_values(values)
    except SettingError as exc:
        origin = values.origins.get(exc.name, "its default")
        raise SettingsError(f"{exc} (from {origin})") from None
