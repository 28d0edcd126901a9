"""What a newcomer meets at the command line (issue 11 items 5 and 7), through the real entry
point ``rewardlab.cli.main`` (and the console script for a few): every bad input is one line on
stderr naming the file or key, bounded in size, exit status 2, no traceback, and nothing is left
behind."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from rewardlab.cli import main

MAX_ERROR_CHARS = 600
"""An error line longer than this is not "bounded" (the alias bomb once printed 312 M chars)."""


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line_error(code: int, err: str) -> str:
    """The error line, after checking exit status 2, one line, no traceback, bounded size."""
    assert code == 2, err
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err[:2000]
    assert len(lines[0]) <= MAX_ERROR_CHARS, lines[0][:2000]
    return lines[0]


def console_script() -> list[str]:
    script = Path(sys.executable).with_name("rewardlab")
    return [str(script)] if script.exists() else [sys.executable, "-m", "rewardlab.cli"]


# -- item 5: what a newcomer saw ----------------------------------------------------------------------


@pytest.mark.unit
def test_tasks_with_a_misspelt_name_suggests_the_task(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "tasks", "cartpol_balance")
    line = one_line_error(code, err)
    assert "unknown task 'cartpol_balance'" in line
    assert "did you mean 'cartpole_balance'?" in line
    assert out == ""  # nothing listed before the error


@pytest.mark.unit
def test_tasks_names_a_task_that_cannot_load(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from rewardlab.envs.tasks import base

    def factory() -> type:
        raise ValueError("broken.yaml: model: expected a file")

    monkeypatch.setitem(base._FACTORIES, "broken_demo", factory)
    try:
        code, out, err = run_cli(capsys, "tasks", "broken_demo")
    finally:
        base._BROKEN.pop("broken_demo", None)
    assert code == 1 and err == ""
    assert out == "broken_demo: cannot load: broken.yaml: model: expected a file\n"
