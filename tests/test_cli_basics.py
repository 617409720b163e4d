"""What a new user of the command line expects: --version, ``python -m synthtumor``, shell
completion, help at the terminal's width, whole URLs in the dataset list."""

from __future__ import annotations

import os
import subprocess
import sys

from typer.testing import CliRunner

import synthtumor
from synthtumor.cli import app
from synthtumor.cli_help import reflow
from synthtumor.data.download import DATASETS

runner = CliRunner()


def _run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m synthtumor ARGS`` with stdout a pipe (not a terminal)."""
    full = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), **env}
    if "COLUMNS" not in env:
        full.pop("COLUMNS", None)
    return subprocess.run([sys.executable, "-m", "synthtumor", *args], env=full,
                          capture_output=True, text=True, timeout=120)


def test_version_option() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"synthtumor {synthtumor.__version__}\n"
    assert synthtumor.__version__.count(".") >= 2


def test_python_m_synthtumor_is_the_command() -> None:
    proc = _run("--version")
    assert proc.returncode == 0 and proc.stdout == f"synthtumor {synthtumor.__version__}\n"
    proc = _run("--help")
    assert proc.returncode == 0 and "Usage: synthtumor [OPTIONS] COMMAND" in proc.stdout
    assert "--show-completion" in proc.stdout and "--install-completion" in proc.stdout


def test_shell_completion_completes_commands() -> None:
    proc = _run(_SYNTHTUMOR_COMPLETE="complete_bash", COMP_WORDS="synthtumor turing s",
                COMP_CWORD="2")
    assert proc.returncode == 0 and proc.stdout.split() == ["serve"], proc.stdout
    proc = _run(_SYNTHTUMOR_COMPLETE="complete_bash", COMP_WORDS="synthtumor ex",
                COMP_CWORD="1")
    assert proc.stdout.split() == ["export"], proc.stdout


def test_help_uses_the_whole_width_of_a_wide_terminal() -> None:
    wide = _run("--help", COLUMNS="200").stdout
    # the demo's one-sentence summary fits one line of a 200-column terminal
    assert any("train a small U-Net on healthy phantoms with synthetic tumors, evaluate it"
               in line for line in wide.splitlines()), wide
    assert max(len(line) for line in wide.splitlines()) <= 200
    demo = _run("demo", "--help", COLUMNS="200").stdout
    assert any("shape the synthesis example; with --synthesis-only" in line
               for line in demo.splitlines()), demo
    narrow = _run("demo", "--help", COLUMNS="80").stdout
    assert max(len(line) for line in narrow.splitlines()) <= 80
    assert "synthesis example" in " ".join(narrow.split())


def test_reflow_keeps_paragraphs_and_lists() -> None:
    text = "One\n    two.\n\n    Three\n    four.\n\n    - a\n    - b\n"
    assert reflow(text) == "One two.\n\nThree four.\n\n- a\n- b"
    assert reflow("\b\nkeep\nlines") == "\b\nkeep\nlines"


def test_dataset_list_shows_whole_urls_on_one_line() -> None:
    proc = _run("data", "download")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    for d in DATASETS:
        assert any(d.url in line and d.name in line for line in lines), (d.url, proc.stdout)
