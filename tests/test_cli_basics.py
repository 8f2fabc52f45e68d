"""Finding one's way in `dmwan`: -h, --version, the shipped configs by name, and `dmwan info`."""

from __future__ import annotations

import json

import pytest

from dmwan_qdrant import __version__
from dmwan_qdrant.encoder import resolve_device
from dmwan_qdrant.errors import UsageError
from dmwan_qdrant.training.config import TrainConfig, shipped_configs

from cli_helpers import dmwan, one_line_error


def test_version_and_short_help(capsys):
    code, out, _ = dmwan(capsys, "--version")
    assert code == 0 and out.strip() == f"dmwan-qdrant {__version__}"
    for args in (["-h"], ["collections", "-h"], ["query", "-h"]):
        code, out, _ = dmwan(capsys, *args)
        assert code == 0 and "Usage: dmwan" in out, args
    code, out, _ = dmwan(capsys, "--help")
    assert "--install-completion" in out  # Typer's shell completion


def test_shipped_configs_by_name(capsys):
    code, out, _ = dmwan(capsys, "configs")
    names = [line.split()[0] for line in out.strip().splitlines()]
    assert code == 0 and names == sorted(shipped_configs()) and "procedural_tiny" in names
    code, out, _ = dmwan(capsys, "configs", "--json")
    listed = json.loads(out)
    assert {c["name"] for c in listed} == set(names) and all(c["about"] for c in listed)
    assert TrainConfig.from_file("procedural_tiny").name == "procedural-tiny"
    assert TrainConfig.from_file("procedural_tiny.yaml").name == "procedural-tiny"


def test_an_unknown_config_names_the_shipped_ones(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # outside the checkout
    code, _, err = dmwan(capsys, "train", "--config", "procedural_tiyn")
    line = one_line_error(err)
    assert code == 2 and "procedural_tiny" in line and "dmwan configs" in line
    code, _, err = dmwan(capsys, "train", "--config", "conf/procedural_tiny.yaml")  # a path is never a name
    assert code == 2 and "config file not found: conf/procedural_tiny.yaml" in one_line_error(err)


def test_info_says_which_store_and_why(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("QDRANT_URL", raising=False)
    monkeypatch.setenv("DMWAN_STORE", str(tmp_path / "env-store"))
    code, out, _ = dmwan(capsys, "info", "--json")
    report = json.loads(out)
    assert code == 0 and report["store"] == {"backend": "embedded", "location": str(tmp_path / "env-store"),
                                             "chosen_by": "$DMWAN_STORE", "exists": False}
    assert not (tmp_path / "env-store").exists()  # info creates nothing
    assert report["device"]["name"] in ("cpu", "cuda") and report["versions"]["torch"]

    monkeypatch.setenv("QDRANT_URL", "http://qdrant.example:6333")
    report = json.loads(dmwan(capsys, "info", "--json")[1])
    assert report["store"]["backend"] == "server" and report["store"]["location"] == "http://qdrant.example:6333"
    report = json.loads(dmwan(capsys, "info", "--json", "--store", tmp_path)[1])
    assert report["store"]["chosen_by"] == "--store" and report["store"]["exists"] is True

    code, out, _ = dmwan(capsys, "info")
    assert code == 0 and "chosen by $QDRANT_URL (it wins over $DMWAN_STORE; --store wins over it)" in out


def test_only_ingest_creates_a_store(capsys, tmp_path):
    typo = tmp_path / "stroe"
    for args in (["collections", "list"], ["collections", "info", "x"], ["collections", "delete", "x", "--yes"],
                 ["collections", "optimize", "x"], ["collections", "check", "x"], ["query", "--text", "a", "-c", "x"]):
        code, _, err = dmwan(capsys, *args, "--store", typo)
        line = one_line_error(err)
        assert code == 6 and f"no store at {typo}" in line and "--store" in line, args
        assert not typo.exists(), args


def test_device_is_checked_on_every_command_that_runs_the_model(capsys, tmp_path):
    for args in (["query", "x.png", "-c", "pics"], ["ingest", tmp_path, "-c", "pics"],
                 ["eval", "--model", tmp_path, "--dataset", "procedural", "--root", tmp_path]):
        code, out, _ = dmwan(capsys, *args, "--help")
        assert "--device" in out, args
    assert resolve_device("cpu") == "cpu" and resolve_device(None) in ("cpu", "cuda", "mps")
    with pytest.raises(UsageError, match="unknown device 'tpu'"):
        resolve_device("tpu")


def test_one_meaning_per_short_flag(capsys):
    code, out, _ = dmwan(capsys, "train", "--help")
    assert code == 0 and "-c " not in out.replace("--config", "")  # -c is --collection everywhere
    code, out, _ = dmwan(capsys, "ingest", "--help")
    assert "--decode-workers" in out


def _all_commands() -> list[list[str]]:
    import typer

    from dmwan_qdrant.cli.app import _register_commands, app

    _register_commands()
    root = typer.main.get_command(app)
    out: list[list[str]] = []

    def walk(cmd, path):
        for name, sub in getattr(cmd, "commands", {}).items():
            out.append(path + [name])
            walk(sub, path + [name])

    walk(root, [])
    return out


def test_help_names_values_as_users_write_them(capsys, monkeypatch):
    """No Python type placeholders (<bool>, <str>, <list[Path]>) in any command's help."""
    import re

    monkeypatch.setenv("COLUMNS", "200")
    commands = _all_commands()
    assert ["model", "create"] in commands and ["collections", "recover"] in commands
    placeholder = re.compile(r"<(bool|str|int|float|path|dir|file|list\[[^>]*\]|int range|float range)>")
    for args in [[]] + commands:
        code, out, _ = dmwan(capsys, *args, "--help")
        assert code == 0, args
        assert not placeholder.search(out), (args, placeholder.search(out).group(0))
    code, out, _ = dmwan(capsys, "query", "--help")
    assert "COLLECTION" in out and "BUNDLE|NAME" in out  # options that take a value name it


def test_json_on_every_command_that_reports(capsys):
    """Every command that reports something has --json (serve serves; it reports nothing)."""
    reporting = [c for c in _all_commands() if c not in (["serve"], ["collections"], ["model"])]
    for args in reporting:
        code, out, _ = dmwan(capsys, *args, "--help")
        assert "--json" in out, args
    code, out, _ = dmwan(capsys, "version", "--json")
    assert code == 0 and json.loads(out)["dmwan-qdrant"] == __version__
