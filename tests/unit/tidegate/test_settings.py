"""The command line's settings: flag over environment over config file, defaults, origins."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.ftp_settings import FtpSettings
from connectors.notifications.settings import NotifySettings
from streams.kafka.settings import KafkaSettings
from tests.unit.names_read import names_read
from tidegate.cli import build_parser
from tidegate.config_file import ConfigFile
from tidegate.settings import (
    FLAGS,
    RunSettings,
    Settings,
    SettingsError,
    build_settings,
    settings_values,
)

FILE = Path("/etc/tidegate.toml")


def test_a_flag_beats_the_environment_which_beats_the_file() -> None:
    args = build_parser().parse_args(["run", "--http-port", "1"])
    environ = {"TIDEGATE_HTTP_PORT": "2", "TIDEGATE_SFTP_PORT": "3", "PATH": "/bin"}
    config = ConfigFile(
        FILE, {"TIDEGATE_HTTP_PORT": "4", "TIDEGATE_SFTP_PORT": "5", "TIDEGATE_FTP_PORT": "6"}
    )
    values = settings_values(args, environ, config)
    assert values == {
        "TIDEGATE_HTTP_PORT": "1",
        "TIDEGATE_SFTP_PORT": "3",
        "TIDEGATE_FTP_PORT": "6",
    }
    assert values.origins == {
        "TIDEGATE_HTTP_PORT": "the flag --http-port",
        "TIDEGATE_SFTP_PORT": "the environment variable TIDEGATE_SFTP_PORT",
        "TIDEGATE_FTP_PORT": f"ftp_port in {FILE}",
    }
    run = Settings.from_values(values).run
    assert (run.http_port, run.sftp_port, run.ftp.port if run.ftp else None) == (1, 3, 6)


def test_a_flag_left_out_is_absent_so_the_defaults_are_the_old_ones() -> None:
    args = build_parser().parse_args(["run"])
    assert settings_values(args, {}, None) == {}
    settings = Settings.from_values({})
    assert settings == Settings(
        data=Path("data"),
        progress_seconds=5.0,
        now=None,
        run=RunSettings(
            host="127.0.0.1",
            sftp_port=2222,
            http_port=8080,
            settle_seconds=2.0,
            s3_interval=30.0,
            drain_seconds=10.0,
            ftp=FtpSettings(host="127.0.0.1", port=2121, allow_plain=False),
        ),
        notify=NotifySettings(),
    )


WORKER_FLAGS = {"TIDEGATE_BROKER", "TIDEGATE_PARTITIONS", "TIDEGATE_STATE", "TIDEGATE_METRICS_PORT"}


def test_every_flag_of_run_reaches_its_variable() -> None:
    argv = ["run"]
    run_flags = {name: flag for name, flag in FLAGS.items() if name not in WORKER_FLAGS}
    for flag in [*run_flags.values(), "--broker"]:
        argv += [flag] if flag == "--ftp-allow-plain" else [flag, "7"]
    values = settings_values(build_parser().parse_args(argv), {}, None)
    assert set(values) == {*run_flags, "TIDEGATE_BROKER"}
    assert values["TIDEGATE_FTP_ALLOW_PLAIN"] == "true"
    assert set(FLAGS) <= set(Settings.NAMES)


def test_every_flag_of_worker_reaches_its_variable() -> None:
    argv = ["worker"]
    for name in sorted(WORKER_FLAGS):
        argv += [FLAGS[name], "7"]
    values = settings_values(build_parser().parse_args(argv), {}, None)
    assert set(values) == WORKER_FLAGS
    assert Settings.from_values(values).kafka.partitions == 7


def test_data_is_read_for_every_command_that_takes_it() -> None:
    for argv in (
        ["uploads", "--data", "/srv/tg"],
        ["accounts", "--data", "/srv/tg", "list"],
        ["doctor", "--data", "/srv/tg"],
        ["replay", "x", "--data", "/srv/tg"],
        ["import", "f", "--account", "a", "--data", "/srv/tg"],
        ["notifications", "list", "--account", "a", "--data", "/srv/tg"],
        ["s3-secret", "a", "--data", "/srv/tg"],
        ["upload", "x", "--data", "/srv/tg"],
        ["run", "--data", "/srv/tg"],
    ):
        args = build_parser().parse_args(argv)
        assert Settings.from_values(settings_values(args, {}, None)).data == Path("/srv/tg")


def test_the_global_config_option_is_not_a_commands_accounts_file() -> None:
    args = build_parser().parse_args(["--config", "tidegate.toml", "run", "--config", "acc.toml"])
    assert (args.settings_file, args.config) == ("tidegate.toml", Path("acc.toml"))


@pytest.mark.parametrize(
    ("argv", "environ", "file_text", "origin"),
    [
        (["run", "--http-port", "http"], {}, "", "the flag --http-port"),
        (
            ["run"],
            {"TIDEGATE_HTTP_PORT": "http"},
            "",
            "the environment variable TIDEGATE_HTTP_PORT",
        ),
        (["run"], {}, 'http_port = "http"\n', "http_port in "),
    ],
)
def test_a_bad_value_names_the_setting_its_value_and_its_source(
    tmp_path: Path, argv: list[str], environ: dict[str, str], file_text: str, origin: str
) -> None:
    config = tmp_path / "tidegate.toml"
    config.write_text(file_text, encoding="utf-8")
    args = build_parser().parse_args(argv)
    with pytest.raises(SettingsError) as caught:
        build_settings(args, environ, str(config))
    assert str(caught.value).startswith("TIDEGATE_HTTP_PORT='http': not a whole number (from ")
    assert origin in str(caught.value)


def test_the_config_file_comes_from_the_environment_unless_given(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text("http_port = 1\n", encoding="utf-8")
    (tmp_path / "b.toml").write_text("http_port = 2\n", encoding="utf-8")
    args = build_parser().parse_args(["run"])
    environ = {"TIDEGATE_CONFIG": str(tmp_path / "a.toml")}
    assert build_settings(args, environ, None).run.http_port == 1
    assert build_settings(args, environ, str(tmp_path / "b.toml")).run.http_port == 2
    assert build_settings(args, {}, None).run.http_port == 8080


def test_names_lists_exactly_what_from_values_reads() -> None:
    values = {name: "1" for name in Settings.NAMES} | {
        "TIDEGATE_SMTP_SECURITY": "tls",
        "TIDEGATE_NOW": "2018-09-02T00:00:00Z",
        "TIDEGATE_FTP_PASSIVE_PORTS": "60000-60001",
        "TIDEGATE_GUARANTEE": "at_least_once",
        "TIDEGATE_LOG_LEVEL": "INFO",
        "TIDEGATE_PRODUCER_BATCH_BYTES": "4096",
    }
    assert names_read(Settings.from_values, values) == set(Settings.NAMES)
    assert names_read(KafkaSettings.from_values, values) == set(KafkaSettings.NAMES)
    assert names_read(RunSettings.from_values, values) == set(RunSettings.NAMES)
