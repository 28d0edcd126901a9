"""What a newcomer meets at the command line (issue 11 items 5 and 7), through the real entry
point ``rewardlab.cli.main`` (and the console script for a few): every bad input is one line on
stderr naming the file or key, bounded in size, exit status 2, no traceback, and nothing is left
behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rewardlab.cli import main

MAX_ERROR_CHARS = 850
"""An error line longer than this is not "bounded" (the alias bomb once printed 312 M chars):
the CLI cuts messages to ``rewardlab.cli.MAX_ERROR_CHARS`` (800), plus its prefix."""


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
@pytest.mark.parametrize(
    ("argv", "instead"),
    [
        (["train", "--num_envs", "32"], "num_envs=32"),
        (["train", "task=cartpole_balance", "--num_envs=32"], "num_envs=32"),
        (["train", "--ppo.learning_rate", "3e-4"], "ppo.learning_rate=3e-4"),
        (["train", "--task", "cartpole_balance", "--total_steps", "1000"], "task=cartpole_balance"),
        (["train", "--task_cfg.episode_steps", "20"], "task_cfg.episode_steps=20"),
        (["eval", "--run_dir", "runs/cp"], "run_dir=runs/cp"),
        (["play", "runs/cp", "--episodes", "3"], "episodes=3"),
        (["export", "--out=robot/policy"], "out=robot/policy"),
    ],
)
def test_dash_dash_key_says_what_to_type_instead(
    capsys: pytest.CaptureFixture[str], argv: list[str], instead: str
) -> None:
    code, out, err = run_cli(capsys, *argv)
    line = one_line_error(code, err)
    assert f"write {instead}" in line, line
    assert "usage:" not in err and out == ""


@pytest.mark.unit
def test_an_unknown_dash_dash_word_is_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run_cli(capsys, "train", "--bogus", "1")
    line = one_line_error(code, err)
    assert "--bogus" in line and "key=value" in line and "rewardlab train --help" in line
    assert "write" not in line  # no made-up key to suggest


@pytest.mark.unit
def test_dash_dash_hint_through_the_console_script() -> None:
    proc = subprocess.run(
        [*console_script(), "train", "--num_envs", "32"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "write num_envs=32" in proc.stderr, proc.stderr


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


@pytest.mark.unit
def test_settings_may_follow_an_option(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """``key=value`` words after ``--config FILE`` are settings too (argparse's plain parsing
    stopped taking them after the first option: "unrecognized arguments: num_envs=abc")."""
    config = tmp_path / "c.yaml"
    config.write_text("total_steps: 64\n")
    code, _, err = run_cli(
        capsys, "train", "task=cartpole_balance", "--config", str(config), "num_envs=abc"
    )
    line = one_line_error(code, err)
    assert "command line: num_envs: got 'abc'" in line, line


@pytest.mark.unit
def test_debug_is_accepted_after_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match="num_envs"):
        main(["train", "--debug", "task=cartpole_balance", "num_envs=abc"])


TINY = [
    "task=cartpole_balance",
    "total_steps=256",
    "num_envs=8",
    "nthread=1",
    "ppo.num_steps=32",
    "task_cfg.episode_steps=15",
    "eval.episodes=2",
    "eval.video=false",
]
"""One PPO iteration of 8 worlds x 32 steps: a real run directory in a few seconds."""


@pytest.fixture(scope="module")
def cartpole_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runs") / "cp"
    assert main(["train", *TINY, f"run_dir={root}"]) == 0
    return root


def _tree(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in sorted(root.rglob("*"))}


@pytest.mark.smoke
def test_another_task_into_a_run_directory_names_the_run_s_task(
    capsys: pytest.CaptureFixture[str], cartpole_run: Path
) -> None:
    capsys.readouterr()
    before = _tree(cartpole_run)
    code, out, err = run_cli(capsys, "train", "task=pendulum_swingup", f"run_dir={cartpole_run}")
    line = one_line_error(code, err)
    assert f"{cartpole_run} holds a run of task cartpole_balance" in line, line
    assert "another run_dir" in line and "resume=false" in line
    assert "task_cfg" not in line and "unknown key" not in line
    assert out == "" and _tree(cartpole_run) == before  # nothing touched


@pytest.mark.smoke
@pytest.mark.parametrize(
    ("argv", "status"),
    [(["tasks", "cartpole_balance"], 141), (["train", "--help"], 0)],
    ids=["tasks", "help"],
)
def test_output_into_a_closed_pipe_exits_quietly(argv: list[str], status: int) -> None:
    """``rewardlab tasks | head`` once ended in a BrokenPipeError traceback; here the reader
    closes the pipe before anything is written, as ``head`` does after its lines."""
    proc = subprocess.Popen(
        [*console_script(), *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read().decode()
    code = proc.wait(timeout=120)
    assert err == "", err
    assert code == status  # 141: as a process killed by SIGPIPE (argparse's help: its own 0)


REJECTED = """import os


def compute_reward(state, action):
    os.system("true")
    return state["pole_angle"], {}
"""
"""A reward file the sandbox's checks reject (line 1 imports os, which it uses)."""


@pytest.mark.smoke
@pytest.mark.parametrize("reward", ["bad.py", "/dev/zero", "missing.py"])
def test_a_rejected_reward_file_leaves_no_run_directory(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    reward: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.py").write_text(REJECTED)
    code, out, err = run_cli(capsys, "train", *TINY, f"reward=code:{reward}")  # default run_dir
    line = one_line_error(code, err)
    assert {"bad.py": "bad.py:1:", "/dev/zero": "/dev/zero:", "missing.py": "missing.py:"}[
        reward
    ] in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.py"]  # no runs/
    assert out == ""


@pytest.mark.smoke
def test_a_rejected_reward_file_does_not_touch_an_existing_run(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, cartpole_run: Path
) -> None:
    (tmp_path / "bad.py").write_text(REJECTED)
    capsys.readouterr()
    before = _tree(cartpole_run)
    for resume in ("true", "false"):  # false would have moved the run's outputs to previous-*/
        code, _, err = run_cli(
            capsys,
            "train",
            *TINY,
            f"run_dir={cartpole_run}",
            f"reward=code:{tmp_path / 'bad.py'}",
            f"resume={resume}",
        )
        assert "bad.py:1:" in one_line_error(code, err)
        assert _tree(cartpole_run) == before


# -- item 7: config input that cannot hurt, through the command line ---------------------------------


def _alias_bomb(last: str) -> str:
    """Nine levels of nine aliases each (9^9 = 387 M values once expanded), the last line
    ``last`` (which puts the bomb under a known key)."""
    lines = ['a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for i in range(1, 9):
        name, prev = chr(ord("a") + i), chr(ord("a") + i - 1)
        lines.append(f"{name}: &{name} [{', '.join(['*' + prev] * 9)}]")
    return "\n".join([*lines, last]) + "\n"


CONFIG_FILES = {
    "alias_bomb_task": (_alias_bomb("task: *i"), ["bomb.yaml", "alias"]),
    "alias_bomb_ppo": (_alias_bomb("ppo:\n  learning_rate: *i"), ["bomb.yaml", "alias"]),
    "nested_brackets": ("task: " + "[" * 20000 + "]" * 20000 + "\n", ["bomb.yaml", "nested"]),
    "not_utf8": (b"task: cartpole_balance\n# caf\xe9\n", ["bomb.yaml", "UTF-8"]),
    "duplicate_keys": ("task: cartpole_balance\nnum_envs: 4\nnum_envs: 8\n", ["bomb.yaml", "duplicate key 'num_envs'"]),
}  # fmt: skip


@pytest.mark.unit
@pytest.mark.parametrize("name", list(CONFIG_FILES))
def test_a_hostile_config_file_is_one_line_naming_the_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str
) -> None:
    text, expected = CONFIG_FILES[name]
    path = tmp_path / "bomb.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    code, _, err = run_cli(capsys, "train", "--config", str(path))
    line = one_line_error(code, err)
    for part in expected:
        assert part in line, line
    assert not (tmp_path / "runs").exists()


SETTINGS = [
    (["--config", "/dev/zero"], ["/dev/zero", "not a regular file"]),
    (["task=" + "[" * 20000 + "]" * 20000], ["command line: task", "nested"]),
    (["num_envs=99999999999999999999999"], ["num_envs", "64-bit integer"]),
    (["num_envs=1000000000"], ["num_envs", "1000000000", "1048576"]),
    (["num_envs=10**9"], ["num_envs", "'10**9'", "an integer"]),
    (["run_dir=/etc/passwd"], ["run_dir", "/etc/passwd", "expected a directory"]),
    (["ppo.learning_rate=.inf"], ["ppo.learning_rate", "inf", "finite"]),
    (["ppo.clip_ratio=.inf"], ["ppo.clip_ratio", "inf", "finite"]),
    (["ppo.desired_kl=.inf"], ["ppo.desired_kl", "inf", "finite"]),
    (["ppo.learning_rate=.nan"], ["ppo.learning_rate", "nan", "finite"]),
]  # fmt: skip


@pytest.mark.unit
@pytest.mark.parametrize(("argv", "expected"), SETTINGS, ids=[a[-1][:40] for a, _ in SETTINGS])
def test_a_hostile_setting_is_one_line_naming_the_key(
    capsys: pytest.CaptureFixture[str], argv: list[str], expected: list[str]
) -> None:
    code, _, err = run_cli(capsys, "train", "task=cartpole_balance", *argv)
    line = one_line_error(code, err)
    for part in expected:
        assert part in line, line


@pytest.mark.unit
def test_the_num_envs_bound_is_max_num_envs(capsys: pytest.CaptureFixture[str]) -> None:
    from rewardlab.config import MAX_NUM_ENVS

    code, _, err = run_cli(capsys, "train", "task=cartpole_balance", f"num_envs={MAX_NUM_ENVS + 1}")
    assert f"[1, {MAX_NUM_ENVS}]" in one_line_error(code, err)


@pytest.mark.smoke
@pytest.mark.parametrize(
    "argv",
    [
        ["run_dir=/etc/passwd/run"],  # under a file: NotADirectoryError
        ["run_dir=/proc/run"],  # cannot be created
    ],
    ids=["under_a_file", "not_creatable"],
)
def test_a_run_dir_that_cannot_be_made_is_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    code, _, err = run_cli(capsys, "train", *TINY, *argv)
    line = one_line_error(code, err)
    assert "run_dir" in line and argv[0].split("=", 1)[1] in line, line


@pytest.mark.smoke
@pytest.mark.parametrize("where", ["--config", "reward=code:"])
def test_a_fifo_is_refused_at_once(tmp_path: Path, where: str) -> None:
    """Opening a FIFO for reading waits for a writer: the command hung before it could say
    that it is not a regular file."""
    import os

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    words = ["--config", str(fifo), "task=cartpole_balance"] if where == "--config" else [*TINY, f"reward=code:{fifo}", f"run_dir={tmp_path / 'run'}"]  # fmt: skip
    proc = subprocess.run(
        [*console_script(), "train", *words], capture_output=True, text=True, timeout=120
    )
    line = one_line_error(proc.returncode, proc.stderr)
    assert str(fifo) in line and "not a regular file" in line, line
    assert not (tmp_path / "run").exists()


@pytest.mark.smoke
@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["eval", "episodes=2", "video=true", "out=/etc/passwd/v.mp4"], "/etc/passwd"),
        (["export", "out=/etc/passwd/export"], "/etc/passwd/export"),
    ],
    ids=["eval_video_under_a_file", "export_under_a_file"],
)
def test_an_output_path_that_cannot_be_written_is_one_line(
    capsys: pytest.CaptureFixture[str], cartpole_run: Path, argv: list[str], expected: str
) -> None:
    capsys.readouterr()
    code, _, err = run_cli(capsys, argv[0], f"run_dir={cartpole_run}", *argv[1:])
    line = one_line_error(code, err)
    assert expected in line, line


@pytest.mark.smoke
def test_a_rollout_too_large_for_memory_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """8 worlds x 1e13 steps of rollout storage: more memory than any machine has."""
    code, _, err = run_cli(
        capsys, "train", *TINY, "ppo.num_steps=10000000000000", f"run_dir={tmp_path / 'r'}"
    )
    line = one_line_error(code, err)
    assert "out of memory" in line and "num_envs" in line and "ppo.num_steps" in line, line


# -- the errors of the new code, each one line through the command line --------------------------------


LATE_FAILURE = """import torch

CALLS = [0]


def compute_reward(state, action):
    CALLS[0] += 1
    if CALLS[0] > 60:
        raise ValueError("late failure")
    return state["cart_pos"] * 1.0, {}
"""
"""Passes the loader's checks, then fails in training (past the checks' calls)."""


@pytest.mark.smoke
def test_a_reward_that_fails_in_training_is_one_line_naming_file_and_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    reward = tmp_path / "late.py"
    reward.write_text(LATE_FAILURE)
    code, _, err = run_cli(
        capsys,
        "train",
        *TINY,
        "total_steps=2048",
        f"reward=code:{reward}",
        f"run_dir={tmp_path / 'r'}",
    )
    line = one_line_error(code, err)  # RewardRuntimeError: a SandboxFailure, not a ValueError
    assert f"{reward}:9: exception: ValueError: late failure" in line, line


@pytest.mark.smoke
def test_a_corrupt_checkpoint_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, cartpole_run: Path
) -> None:
    garbage = tmp_path / "model_9.pt"
    garbage.write_bytes(b"not a checkpoint")
    capsys.readouterr()
    code, _, err = run_cli(capsys, "eval", f"run_dir={cartpole_run}", f"checkpoint={garbage}")
    line = one_line_error(code, err)  # CheckpointError
    assert str(garbage) in line and "corrupt checkpoint" in line, line


@pytest.mark.unit
def test_a_full_disk_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rewardlab import runs
    from rewardlab.core.files import DiskFullError

    def full(path: Path, data: object) -> Path:
        raise DiskFullError(path)

    monkeypatch.setattr(runs, "atomic_write", full)
    run_dir = tmp_path / "r"
    code, _, err = run_cli(capsys, "train", *TINY, f"run_dir={run_dir}")
    line = one_line_error(code, err)
    assert f"no space left on device while writing {run_dir}" in line, line


@pytest.mark.unit
def test_an_agent_whose_extra_is_missing_is_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from rewardlab.agents.registry import AGENTS

    monkeypatch.setitem(AGENTS._entries, "ghost", "rewardlab_no_such_module:GhostAgent")
    code, _, err = run_cli(capsys, "train", *TINY, "agent=ghost")
    line = one_line_error(code, err)  # AgentUnavailableError
    assert "agent ghost" in line and "rewardlab_no_such_module" in line, line


@pytest.mark.unit
def test_an_install_without_its_configs_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rewardlab.core import resources

    monkeypatch.delenv(resources.ENV_VAR, raising=False)
    monkeypatch.setattr(resources, "_candidates", lambda: [tmp_path / "nowhere"])
    code, _, err = run_cli(capsys, "train", "task=cartpole_balance")
    line = one_line_error(code, err)  # ConfigsNotFoundError
    assert "no sim_configs/ folder found" in line and str(tmp_path / "nowhere") in line, line


@pytest.mark.smoke
@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["checkpoint=/dev/zero"], ["checkpoint", "/dev/zero", "not a regular file"]),
        (["num_envs=1000000000"], ["num_envs", "1000000000", "1048576"]),
    ],
    ids=["checkpoint_dev_zero", "num_envs_1e9"],
)
def test_eval_refuses_hostile_settings_in_one_line(
    capsys: pytest.CaptureFixture[str], cartpole_run: Path, argv: list[str], expected: list[str]
) -> None:
    capsys.readouterr()
    code, _, err = run_cli(capsys, "eval", f"run_dir={cartpole_run}", *argv)
    line = one_line_error(code, err)
    for part in expected:
        assert part in line, line


@pytest.mark.unit
def test_replay_of_a_folder_that_is_no_bag_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    pytest.importorskip("rosbags")
    code, _, err = run_cli(capsys, "replay", "bag=/dev/zero", "reward=task:arm_reach")
    line = one_line_error(code, err)  # was a rosbags ReaderError traceback
    assert "bag: '/dev/zero'" in line and "rosbag2" in line, line
    code, _, err = run_cli(capsys, "replay", f"bag={tmp_path}", "reward=task:arm_reach")
    assert str(tmp_path) in one_line_error(code, err)  # an empty folder: no metadata.yaml
