"""The FTP drop's settings (docs/FTP.md), apart from the server so reading them stays light."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from streams.core.config_values import (
    Values,
    read_bool,
    read_float,
    read_port,
    read_port_range,
    read_str,
)


@dataclass(frozen=True, slots=True)
class FtpSettings:
    """The FTP drop's settings (see docs/FTP.md)."""

    host: str = "127.0.0.1"
    port: int = 2121
    allow_plain: bool = False  # plain FTP (no AUTH TLS) accepted only when True
    passive_ports: tuple[int, int] | None = None  # inclusive range; None: any free port
    masquerade_address: str | None = None  # address announced in PASV replies (NAT)
    certfile: Path | None = None  # PEM certificate chain; None: generated into the data dir
    keyfile: Path | None = None  # PEM private key; None: in certfile
    max_connections: int = 256
    max_connections_per_ip: int = 16
    login_timeout: float = 60.0  # seconds from connect to a login (0: never)
    idle_timeout: float = 300.0  # seconds without a command, or a data byte (0: never)

    # every variable `from_values` reads (the command line's config file accepts these keys)
    NAMES: ClassVar[tuple[str, ...]] = (
        "TIDEGATE_HOST",
        "TIDEGATE_FTP_PORT",
        "TIDEGATE_FTP_ALLOW_PLAIN",
        "TIDEGATE_FTP_PASSIVE_PORTS",
        "TIDEGATE_FTP_MASQUERADE_ADDRESS",
        "TIDEGATE_FTP_CERT",
        "TIDEGATE_FTP_KEY",
        "TIDEGATE_LOGIN_TIMEOUT",
        "TIDEGATE_IDLE_TIMEOUT",
    )

    @classmethod
    def from_values(cls, values: Values) -> FtpSettings | None:
        """The drop's settings from the command line's merged values; None when it is off
        (`TIDEGATE_FTP_PORT=-1`)."""
        port = read_port(values, "TIDEGATE_FTP_PORT", 2121, minimum=-1)
        # read before the port decides, so a bad value is reported even with the drop off
        settings = cls(
            host=read_str(values, "TIDEGATE_HOST", "127.0.0.1"),
            port=port,
            allow_plain=read_bool(values, "TIDEGATE_FTP_ALLOW_PLAIN", False),
            passive_ports=read_port_range(values, "TIDEGATE_FTP_PASSIVE_PORTS"),
            masquerade_address=read_str(values, "TIDEGATE_FTP_MASQUERADE_ADDRESS", "") or None,
            certfile=_path_or_none(read_str(values, "TIDEGATE_FTP_CERT", "")),
            keyfile=_path_or_none(read_str(values, "TIDEGATE_FTP_KEY", "")),
            # the SFTP drop's too (tidegate/settings.py RunSettings): one pair for both drops
            login_timeout=read_float(values, "TIDEGATE_LOGIN_TIMEOUT", 60.0, minimum=0),
            idle_timeout=read_float(values, "TIDEGATE_IDLE_TIMEOUT", 300.0, minimum=0),
        )
        return None if port < 0 else settings


def _path_or_none(text: str) -> Path | None:
    return Path(text) if text else None
