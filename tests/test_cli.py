"""The ``rewardlab`` CLI end to end (train -> run dir -> eval / play / export / resume), its
errors, and the evaluation and plotting it relies on."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from rewardlab.agents.evaluate import evaluate
from rewardlab.cli import main
from rewardlab.plots import plot_learning_curves, read_metrics

TINY = [
    "task=cartpole_balance",
    "total_steps=1024",
    "num_envs=16",
    "nthread=1",
    "checkpoint_every=1",
    "ppo.num_steps=32",
    "task_cfg.episode_steps=15",
    "eval.episodes=4",
    "eval.video_episodes=4",
]
"""A budget that trains in a few seconds on 2 cores: 2 iterations of 16 worlds x 32 steps."""


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def _video_size(path: Path) -> tuple[int, int]:
    """(width, height) of an mp4."""
    import imageio.v2 as imageio

    reader = imageio.get_reader(str(path), "ffmpeg")
    try:
        return tuple(reader.get_meta_data()["size"])
    finally:
        reader.close()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("runs") / "cp"
    code, out, err = run_cli("train", *TINY, f"run_dir={root}")
    assert code == 0, err
    return {"dir": root, "out": out}


# -- train ------------------------------------------------------------------------------------------


@pytest.mark.smoke
def test_train_leaves_a_complete_run_directory(run: dict[str, Any]) -> None:
    d: Path = run["dir"]
    cfg = yaml.safe_load((d / "config.yaml").read_text())
    assert cfg["task"] == "cartpole_balance" and cfg["run_dir"] == str(d)
    assert cfg["task_cfg"]["episode_steps"] == 15 and "fall_angle" in cfg["task_cfg"]
    git = json.loads((d / "git.json").read_text())
    assert "revision" in git and "dirty" in git
    assert list(d.glob("events.out.tfevents.*")), "no TensorBoard events"
    rows = read_metrics(d / "metrics.jsonl")
    assert [r["global_step"] for r in rows] == [512, 1024]
    assert (d / "checkpoints" / "latest.pt").is_file() and (
        d / "checkpoints" / "model_2.pt"
    ).is_file()
    for name in ("policy.pt", "policy.onnx", "policy.json"):
        assert (d / "export" / name).stat().st_size > 0
    assert (d / "videos" / "eval.mp4").stat().st_size > 1000
    assert _video_size(d / "videos" / "eval.mp4") == (480, 544)  # 2x2 worlds, captions below
    assert (d / "plots" / "learning_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    result = json.loads((d / "eval.json").read_text())
    assert result["episodes"] == 4 and 0.0 <= result["success_rate"] <= 1.0
    out = run["out"]
    assert "[ppo] it 2 | step 1,024/1,024" in out  # the runner's progress
    for path in ("config.yaml", "policy.pt", "eval.mp4", "learning_curve.png"):
        assert path in out.split("done:")[-1], f"summary does not name {path}"


@pytest.mark.smoke
def test_readme_run_directory_layout_is_what_train_writes(run: dict[str, Any]) -> None:
    """Every entry of the README's run-directory listing exists in a trained run, and every
    entry the run holds is listed (the README once promised a tensorboard/ folder that no run
    had: the events sit in the run root)."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    block = readme.split("```\nruns/cartpole_balance/\n", 1)[1].split("```", 1)[0]
    listed = {line.split()[0].rstrip("/") for line in block.splitlines() if line.startswith("  ") and line.strip() and not line.startswith("    ")}  # fmt: skip
    d: Path = run["dir"]
    for entry in listed:
        assert list(d.glob(entry)), f"README lists {entry}, the run directory has none"
    held = {"events.out.tfevents.*" if p.name.startswith("events.out") else p.name for p in d.iterdir()}  # fmt: skip
    assert held <= listed, f"README does not list {sorted(held - listed)}"


@pytest.mark.unit
def test_readme_links_point_into_the_repository() -> None:
    root = Path(__file__).resolve().parent.parent
    readme = (root / "README.md").read_text()
    links = re.findall(r"\]\(([^)#]+)\)", readme)
    local = [link for link in links if "://" not in link]
    assert "docs/design.md" in local
    missing = [link for link in local if not (root / link).exists()]
    assert not missing, missing


@pytest.mark.smoke
def test_eval_prints_success_rate_last(run: dict[str, Any]) -> None:
    code, out, _ = run_cli("eval", f"run_dir={run['dir']}", "episodes=5")
    assert code == 0
    lines = out.strip().splitlines()
    assert re.fullmatch(r"success_rate: [01]\.\d\d", lines[-1]), lines[-1]
    assert any(line.startswith("return_mean: ") for line in lines)
    assert any(line.startswith("length_mean: ") for line in lines)
    assert json.loads((run["dir"] / "eval.json").read_text())["episodes"] == 5


@pytest.mark.smoke
def test_eval_of_the_export_matches_the_checkpoint(run: dict[str, Any]) -> None:
    outs = [
        run_cli("eval", str(run["dir"]), "episodes=3", f"source={s}")[1]
        for s in ("checkpoint", "export")
    ]
    tail = [o.strip().splitlines()[-4:] for o in outs]
    assert tail[0] == tail[1], outs  # same policy, same seed: same episodes


@pytest.mark.smoke
def test_resume_continues_from_the_checkpoint(run: dict[str, Any], tmp_path: Path) -> None:
    d = tmp_path / "cp"
    shutil.copytree(run["dir"], d)
    code, out, err = run_cli("train", f"run_dir={d}", "total_steps=1536", "eval.video=false")
    assert code == 0, err
    assert f"resuming from {d / 'checkpoints' / 'latest.pt'} at step 1,024" in out
    rows = read_metrics(d / "metrics.jsonl")
    assert [int(r["iteration"]) for r in rows] == [1, 2, 3]
    assert rows[-1]["global_step"] == 1536
    cfg = yaml.safe_load((d / "config.yaml").read_text())
    assert (
        cfg["total_steps"] == 1536 and cfg["task_cfg"]["episode_steps"] == 15
    )  # the run's own settings

    code, _, err = run_cli("train", f"run_dir={d}", "num_envs=8")
    assert code == 2 and "num_envs" in err and "resume=false" in err

    code, out, err = run_cli(
        "train", *TINY, "total_steps=512", f"run_dir={d}", "resume=false", "eval.video=false"
    )
    assert code == 0, err
    assert "starting over: moved the earlier outputs" in out and "resuming" not in out
    assert len(read_metrics(d / "metrics.jsonl")) == 1
    (previous,) = d.glob("previous-*")
    assert len(read_metrics(previous / "metrics.jsonl")) == 3


@pytest.mark.smoke
def test_play_and_export(run: dict[str, Any], tmp_path: Path) -> None:
    code, out, err = run_cli(
        "play", f"run_dir={run['dir']}", "episodes=2", f"out={tmp_path / 'p.mp4'}"
    )
    assert code == 0, err
    assert (tmp_path / "p.mp4").stat().st_size > 1000 and f"video: {tmp_path / 'p.mp4'}" in out
    assert _video_size(tmp_path / "p.mp4") == (480, 272)  # two worlds side by side
    code, out, err = run_cli("export", f"run_dir={run['dir']}", f"out={tmp_path / 'exp'}")
    assert code == 0, err
    meta = json.loads((tmp_path / "exp" / "policy.json").read_text())
    assert meta["task"] == "cartpole_balance" and meta["checkpoint"].endswith("latest.pt")
    assert {p.name for p in (tmp_path / "exp").iterdir()} == {
        "policy.pt",
        "policy.onnx",
        "policy.json",
    }


@pytest.mark.smoke
def test_train_with_sb3(tmp_path: Path) -> None:
    pytest.importorskip("stable_baselines3")
    d = tmp_path / "sb3"
    argv = [*TINY, "agent=sb3_ppo", "sb3.n_steps=32", "sb3.batch_size=128", "eval.video=false"]
    code, out, err = run_cli("train", *argv, f"run_dir={d}")
    assert code == 0, err
    assert (d / "checkpoints" / "sb3_ppo.zip").is_file() and (
        d / "export" / "policy.onnx"
    ).is_file()
    rows = read_metrics(d / "metrics.jsonl")  # converted from SB3's TensorBoard scalars
    assert rows and rows[-1]["global_step"] == 1024 and "charts/episode_return" in rows[-1]
    assert (d / "plots" / "learning_curve.png").is_file()
    code, out, _ = run_cli("eval", str(d), "episodes=2", "deterministic=false")
    assert code == 0 and out.strip().splitlines()[-1].startswith("success_rate: ")


# -- errors and help ----------------------------------------------------------------------------------


ERRORS = [
    (["train", "task=nope"], ["task", "'nope'", "known tasks", "cartpole_balance"]),
    (["train", "task=cartpole_balance", "num_envs=abc"], ["command line", "num_envs", "'abc'", "an integer"]),
    (["train", "task=cartpole_balance", "ppo.gamma=5"], ["ppo.gamma", "5", "[0, 1]"]),
    (["train", "task=cartpole_balance", "ppo.learnig_rate=1"], ["ppo.learnig_rate", "did you mean 'learning_rate'"]),
    (["train", "task=cartpole_balance", "task_cfg.frame_skip=0"], ["task_cfg.frame_skip", "0"]),
    (["train", "--config", "/nonexistent/c.yaml", "task=cartpole_balance"], ["/nonexistent/c.yaml", "file not found"]),
    (["eval", "run_dir=/nonexistent/run"], ["run_dir", "/nonexistent/run", "existing run directory"]),
    (["eval"], ["command line", "run_dir", "required"]),
    (["eval", "run_dir=x", "episodes=many"], ["episodes", "'many'", "an integer"]),
    (["eval", "run_dir=x", "source=best"], ["source", "'best'", "auto, checkpoint, export"]),
    (["play", "run_dir=x", "epsiodes=3"], ["epsiodes", "did you mean 'episodes'"]),
    (["tasks", "nope"], ["unknown task 'nope'", "known: ", "cartpole_balance"]),
]  # fmt: skip


@pytest.mark.unit
@pytest.mark.parametrize(("argv", "expected"), ERRORS, ids=[" ".join(a) for a, _ in ERRORS])
def test_errors_exit_2_with_one_line(argv: list[str], expected: list[str]) -> None:
    code, out, err = run_cli(*argv)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for part in expected:
        assert part in err, f"{part!r} missing from: {err}"


@pytest.mark.smoke
def test_console_script_error_is_one_line() -> None:
    script = Path(sys.executable).with_name("rewardlab")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "rewardlab.cli"]
    argv = [*cmd, "train", "task=cartpole_balance", "num_envs=abc"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert (
        proc.stderr
        == "rewardlab train: error: command line: num_envs: got 'abc' (str), expected an integer\n"
    )


@pytest.mark.unit
@pytest.mark.parametrize("command", ["train", "eval", "play", "export", "tasks"])
def test_help_on_every_subcommand(command: str) -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    assert out.getvalue().startswith(f"usage: rewardlab {command}")
    if command == "train":
        assert "ppo.learning_rate (a number, default" in out.getvalue()
        assert "task_cfg" in out.getvalue() and "eval.episodes" in out.getvalue()
    if command == "eval":
        assert "episodes (an integer or null" in out.getvalue()


@pytest.mark.unit
def test_tasks_lists_the_state_schema() -> None:
    code, out, _ = run_cli("tasks", "cartpole_balance", "--config")
    assert code == 0
    assert out.startswith("cartpole_balance: obs 5, action 1, 50 Hz")
    assert "pole_angle: [N] rad" in out and "fall_angle=0.25" in out


# -- evaluate and plots --------------------------------------------------------------------------------


class _FakeEnv:
    """World ``w``'s episodes last ``lengths[w]`` steps and succeed when that is even."""

    control_dt = 0.1
    max_episode_steps = 10
    obs_dim = action_dim = 1
    device = torch.device("cpu")

    def __init__(self, lengths: list[int]) -> None:
        self.lengths = torch.tensor(lengths)
        self.num_envs = len(lengths)
        self.t = torch.zeros(self.num_envs, dtype=torch.long)

    def reset(self, seed: int | None = None) -> torch.Tensor:
        self.t.zero_()
        return torch.zeros(self.num_envs, 1)

    def step(self, actions: torch.Tensor) -> tuple:
        self.t += 1
        done = self.t >= self.lengths
        info: dict[str, Any] = {}
        if done.any():
            ids = done.nonzero().squeeze(-1)
            info["episode"] = {
                "env_ids": ids,
                "return": self.t[ids].float(),
                "length": self.t[ids].clone(),
                "success": self.t[ids] % 2 == 0,
            }
            self.t[ids] = 0
        zeros = torch.zeros(self.num_envs)
        return torch.zeros(self.num_envs, 1), zeros, done, zeros.bool(), info

    def render(self, env_ids: list[int]) -> torch.Tensor:
        return torch.full((len(env_ids), 16, 16, 3), int(self.t[0]) * 20, dtype=torch.uint8)


@pytest.mark.unit
def test_evaluate_is_not_biased_to_short_episodes(tmp_path: Path) -> None:
    env = _FakeEnv([1, 4])  # world 0 finishes 4x as many episodes as world 1
    result = evaluate(
        lambda obs: torch.zeros(obs.shape[0], 1),
        env,
        episodes=6,
        video_path=tmp_path / "v.mp4",
        video_episodes=2,
    )
    assert result["episodes"] == 6
    assert sorted(result["lengths"]) == [1, 1, 1, 4, 4, 4]  # 3 episodes of each world
    assert result["length_mean"] == 2.5 and result["success_rate"] == 0.5
    assert (tmp_path / "v.mp4").stat().st_size > 0 and result["video"] == str(tmp_path / "v.mp4")
    odd = evaluate(lambda obs: torch.zeros(obs.shape[0], 1), _FakeEnv([1, 4, 2]), episodes=4)
    assert sorted(odd["lengths"]) == [1, 1, 2, 4]  # world 0 twice, the others once
    with pytest.raises(ValueError, match="stochastic policy"):
        evaluate(lambda obs: obs, env, episodes=1, deterministic=False)


@pytest.mark.unit
def test_plot_several_runs(tmp_path: Path) -> None:
    def write(path: Path, rows: list[dict[str, float]]) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"partial": ')
        return path

    a = [
        write(
            tmp_path / f"a{s}" / "metrics.jsonl",
            [
                {
                    "global_step": i * 100.0,
                    "charts/episode_return": i + s,
                    "charts/success_rate": i / 10,
                }
                for i in range(1, 8)
            ],
        )
        for s in range(2)
    ]
    b = write(
        tmp_path / "b" / "metrics.jsonl",
        [{"global_step": 100.0}, {"global_step": 200.0, "charts/episode_return": 3.0}],
    )
    assert len(read_metrics(b)) == 2  # the partial last line is skipped
    out = plot_learning_curves({"ours": a, "sb3": b}, tmp_path / "plots" / "cmp.png", title="cmp")
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert plot_learning_curves(tmp_path / "b", tmp_path / "one.png").is_file()


@pytest.mark.unit
def test_learning_curve_title_names_the_task_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default run directory is named <task>-<time>: its plot was titled
    "cartpole_balance (cartpole_balance-20260101-120000)"."""
    from rewardlab import pipeline
    from rewardlab.config import load_train_config
    from rewardlab.runs import RunDir

    titles: list[str | None] = []

    def spy(*args: Any, **kwargs: Any) -> Path:
        titles.append(kwargs.get("title"))
        return plot_learning_curves(*args, **kwargs)

    monkeypatch.setattr(pipeline, "plot_learning_curves", spy)
    cfg = load_train_config(["task=cartpole_balance"])
    for name in ("cartpole_balance-20260101-120000", "cp"):
        run = RunDir(tmp_path / name)
        run.root.mkdir()
        run.metrics.write_text(json.dumps({"global_step": 1.0, "charts/success_rate": 0.5}) + "\n")
        assert pipeline.plot_run(cfg, run) == run.plots / "learning_curve.png"
    assert titles == ["cartpole_balance-20260101-120000", "cartpole_balance (cp)"]


@pytest.mark.unit
def test_the_video_is_a_captioned_grid_of_worlds(tmp_path: Path) -> None:
    """The video once showed world 0 only (an 11-frame fall); now a grid of worlds, each held
    on its last frame with a green (success) or red (failure) border and its outcome."""
    import imageio.v2 as imageio

    from rewardlab.agents.evaluate import video_grid

    env = _FakeEnv([3, 4, 5, 6, 7])  # even lengths succeed: worlds 1 and 3
    grid = video_grid(4, env.num_envs, 5)
    assert grid is not None and (grid.cols, grid.rows, grid.episodes) == (2, 2, (1, 1, 1, 1))
    result = evaluate(
        lambda obs: torch.zeros(obs.shape[0], 1),
        env,
        episodes=5,
        video_path=tmp_path / "grid.mp4",
        video_episodes=4,
    )
    frames = [f for f in imageio.get_reader(str(tmp_path / "grid.mp4"), "ffmpeg")]  # noqa: C416 (len() is inf)
    height, width = grid.size
    assert frames[0].shape == (height, width, 3) == (2 * (240 + 32), 2 * 240, 3)
    # 10 fps: one frame per step until the slowest shown world (6 steps) ends, then 1 s held
    assert len(frames) == 1 + 6 + 10
    last = frames[-1].astype(int)
    for world, success in enumerate([False, True, False, True]):
        r, c = divmod(world, 2)
        border = last[r * 272 + 1, c * 240 + 120]  # the middle of the tile's top edge
        assert (border[1] > border[0] + 60) == success, (world, border)
        assert (border[0] > border[1] + 60) == (not success), (world, border)
    assert result["video"] == str(tmp_path / "grid.mp4") and result["episodes"] == 5
    assert video_grid(20, 32, 20).episodes == (3, 3, 2, 2, 2, 2, 2, 2, 2)  # at most 3x3
    assert video_grid(2, 1, 2).episodes == (2,)  # one world: its episodes one after another
    assert video_grid(0, 4, 4) is None
