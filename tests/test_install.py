"""Installing RewardLab as a user does: the package layout, where the configs are found, and (slow)
the README's ``make train`` on a copy of the checkout in a fresh venv, then the wheel of the same
tree installed into that venv and trained from outside the checkout with the same config."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from fnmatch import fnmatch
from pathlib import Path

import pytest
import tomllib

REPO = Path(__file__).resolve().parent.parent
PACKAGE_FOLDERS = ("envs", "agents", "rewards", "vlm_reward", "deploy", "sim_configs")
"""Top-level folders that appear in the import package as ``rewardlab/<folder>`` (symlinks)."""
SMALL_BUDGET = "total_steps=8192"
"""Four PPO iterations of cartpole_balance: the install test checks the path, not the learning."""
FRESH_VENV_DISK = 8 * 2**30
"""Free disk the fresh-venv test needs: torch 2.14.1 with its CUDA libraries is 5.5 GiB in a venv,
plus pip's unpacking and the run. A CI run once ended in ``No space left on device`` halfway
through pip; below this the test says what it needs instead of failing on the machine's disk."""


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def _shipped_files(root: Path) -> list[Path]:
    """Files under the import package ``rewardlab/`` (following its symlinks), as a wheel sees them."""
    out = []
    for folder, dirs, files in os.walk(root / "rewardlab", followlinks=True):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        out += [
            Path(folder, f).relative_to(root) for f in files if not f.endswith((".pyc", ".pyo"))
        ]
    return out


@pytest.mark.unit
def test_top_level_folders_are_symlinked_into_the_package() -> None:
    for name in PACKAGE_FOLDERS:
        link = REPO / "rewardlab" / name
        assert link.is_symlink(), f"rewardlab/{name} must be a symlink to ../{name}"
        assert os.readlink(link) == f"../{name}", os.readlink(link)
        assert link.resolve() == (REPO / name).resolve()


@pytest.mark.unit
def test_every_file_of_the_package_tree_is_selected_for_the_wheel() -> None:
    """setuptools' package discovery and package-data globs select every file under rewardlab/:
    nothing (a config, an MJCF asset, a prompt, the shipped model) is silently left out."""
    cfg = _pyproject()["tool"]["setuptools"]
    find = cfg["packages"]["find"]
    assert find["namespaces"] is True and "package-dir" not in cfg
    globs = cfg["package-data"]["*"]
    missed = [
        str(p)
        for p in _shipped_files(REPO)
        if p.suffix != ".py" and not any(fnmatch(p.name, g) for g in globs)
    ]
    assert not missed, f"not in [tool.setuptools.package-data]: {missed}"
    configs = {
        p.relative_to("rewardlab") for p in _shipped_files(REPO) if p.parts[1] == "sim_configs"
    }
    tracked = {p.relative_to(REPO) for p in (REPO / "sim_configs").rglob("*") if p.is_file()}
    assert configs == tracked and Path("sim_configs/train/default.yaml") in configs


def _run_resources(site: Path, **env: str) -> subprocess.CompletedProcess[str]:
    code = "from rewardlab.core import resources as r; print(r.config_dir())"
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in ("AMENT_PREFIX_PATH", "REWARDLAB_CONFIG_DIR")
    }
    return subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(site)!r}); {code}"],
        env={**clean, **env}, capture_output=True, text=True, timeout=60, cwd=site,
    )  # fmt: skip


@pytest.mark.unit
def test_config_dir_is_found_in_a_wheel_layout_an_ament_prefix_or_the_variable(
    tmp_path: Path,
) -> None:
    """The lookup order of rewardlab.core.resources on an installed tree (no checkout next to it)."""
    prefix = tmp_path / "prefix"
    site = prefix / "lib" / "python3.11" / "site-packages"
    (site / "rewardlab" / "core").mkdir(parents=True)
    (site / "rewardlab" / "__init__.py").write_text("")
    (site / "rewardlab" / "core" / "__init__.py").write_text("")
    shutil.copy(REPO / "rewardlab" / "core" / "resources.py", site / "rewardlab" / "core")

    missing = _run_resources(site)
    assert missing.returncode == 1
    last = missing.stderr.strip().splitlines()[-1]
    assert "ConfigsNotFoundError: rewardlab: no sim_configs/ folder found" in last
    assert "REWARDLAB_CONFIG_DIR" in last and len(last) < 1000

    # colcon / setup.py data files: <prefix>/share/rewardlab/sim_configs
    share = prefix / "share" / "rewardlab" / "sim_configs"
    share.mkdir(parents=True)
    assert _run_resources(site).stdout.strip() == str(share)
    # an ament prefix on AMENT_PREFIX_PATH that holds the package
    ament = tmp_path / "ament"
    (ament / "share" / "ament_index" / "resource_index" / "packages").mkdir(parents=True)
    (ament / "share" / "ament_index" / "resource_index" / "packages" / "rewardlab").write_text("")
    (ament / "share" / "rewardlab" / "sim_configs").mkdir(parents=True)
    found = _run_resources(site, AMENT_PREFIX_PATH=f"/nonexistent{os.pathsep}{ament}")
    assert found.stdout.strip() == str(ament / "share" / "rewardlab" / "sim_configs")
    # the package's own copy (a wheel) wins over both
    (site / "rewardlab" / "sim_configs").mkdir()
    found = _run_resources(site, AMENT_PREFIX_PATH=str(ament))
    assert found.stdout.strip() == str(site / "rewardlab" / "sim_configs")
    # and the variable over everything
    assert _run_resources(site, REWARDLAB_CONFIG_DIR="/x/y").stdout.strip() == "/x/y"


@pytest.mark.unit
def test_config_dir_of_this_checkout() -> None:
    from rewardlab.core import resources

    assert resources.shipped_config_dir() == (REPO / "sim_configs").resolve()
    assert resources.configs_path("train", "default.yaml").is_file()


# ------------------------------------------------------------------------------------------------
# The README's quick start in a fresh venv, then the wheel


DUMP = textwrap.dedent(
    """
    import json, sys
    import rewardlab
    from rewardlab.config import load_train_config
    from rewardlab.core.config import to_plain
    from rewardlab.core.resources import config_dir
    from rewardlab.deploy.robot_config import robot_names
    from rewardlab.envs import task_names
    tasks = task_names()
    print(json.dumps({
        "package": rewardlab.__file__,
        "config_dir": str(config_dir()),
        "tasks": tasks,
        "robots": robot_names(),
        "configs": {t: to_plain(load_train_config([f"task={t}", "run_dir=r"])) for t in tasks},
    }))
    """
)
"""What a user's install resolves: the tasks, robots and each task's resolved training config."""


def _copy_checkout(dst: Path) -> None:
    """The working tree as a fresh clone sees it: tracked and untracked files that git does not
    ignore (symlinks kept as symlinks)."""
    names = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, names):
        src = REPO / name
        if not (src.exists() or src.is_symlink()):
            continue  # deleted in the working tree
        target = dst / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            target.symlink_to(os.readlink(src))
        else:
            shutil.copy2(src, target)


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float) -> str:
    res = subprocess.run(
        cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=timeout,
    )  # fmt: skip
    tail = "\n".join(res.stdout.splitlines()[-60:])
    assert res.returncode == 0, f"{' '.join(cmd)} exited {res.returncode}:\n{tail}"
    assert "Traceback" not in res.stdout, f"{' '.join(cmd)} printed a traceback:\n{tail}"
    return res.stdout


def _user_env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("VIRTUAL_ENV", "PYTHON", "REWARDLAB_"))
    }
    env.pop("MAKEFLAGS", None)
    env.pop("MFLAGS", None)
    return env


CODE_REWARD = """
import torch


def compute_reward(state, action):
    upright = torch.cos(state["pole_angle"])
    return upright, {"upright": upright}
"""
SANDBOXED = """
import sys
import torch
from rewardlab.envs import make_env
from rewardlab.rewards.loader import load_reward_file
env = make_env("cartpole_balance", num_envs=4, nthread=1)
env.set_reward(load_reward_file(sys.argv[1], env))
env.reset(seed=0)
_, reward, *_ = env.step(torch.zeros(4, env.action_dim))
print(float(reward.sum()))
env.close()
"""


@pytest.mark.slow
def test_make_train_in_a_fresh_venv_then_the_wheel_outside_the_checkout() -> None:
    """`make train` on a copy of the checkout (its own fresh venv, as on a clean machine) ends with
    an evaluation, a video and a plot; the wheel built from the same tree, installed into that venv,
    finds the same tasks, robots and configs and trains from a folder outside the checkout."""
    if shutil.which("make") is None or not (REPO / ".git").exists():
        pytest.skip("needs make and a git checkout")
    free = shutil.disk_usage("/tmp").free
    if free < FRESH_VENV_DISK:
        pytest.skip(
            f"needs {FRESH_VENV_DISK / 2**30:.0f} GiB free under /tmp for a fresh venv with torch;"
            f" {free / 2**30:.1f} GiB free"
        )
    work = Path(tempfile.mkdtemp(prefix="rewardlab-install-", dir="/tmp"))
    try:
        clone, venv, outside = work / "clone", work / "venv", work / "outside"
        _copy_checkout(clone)
        outside.mkdir()
        env = _user_env()
        # 1. the README's first command, in a fresh venv (VENV is where `make` creates it)
        _run(["make", "train", f"VENV={venv}", f"TRAIN_ARGS={SMALL_BUDGET}"], clone, env, 1500)
        run = clone / "runs" / "cartpole_balance"
        evaluation = json.loads((run / "eval.json").read_text())
        assert 0.0 <= evaluation["success_rate"] <= 1.0
        videos = list((run / "videos").glob("*.mp4"))
        assert videos and all(v.stat().st_size > 1000 for v in videos), videos
        plots = list((run / "plots").glob("*.png"))
        assert plots and all(p.stat().st_size > 1000 for p in plots), plots
        assert (run / "export" / "policy.onnx").is_file()
        python = str(venv / "bin" / "python")
        checkout = json.loads(_run([python, "-c", DUMP], clone, env, 300))
        assert Path(checkout["package"]).is_relative_to(clone), checkout["package"]
        assert "pendulum_swingup" in checkout["tasks"] and checkout["robots"]
        # a code reward runs in the OS sandbox from this venv, which lives under /tmp (the
        # sandbox's own scratch /tmp once hid it: "setpriv: failed to execute .../python")
        from rewardlab.rewards.boundary import unavailable_reason

        if unavailable_reason() is None:
            reward = work / "reward.py"
            reward.write_text(CODE_REWARD)
            total = _run([python, "-c", SANDBOXED, str(reward)], clone, env, 300).strip().splitlines()[-1]  # fmt: skip
            assert float(total) == pytest.approx(4.0, abs=0.1), total

        # 2. the wheel of the same tree, in the same venv, used from outside the checkout
        dist = work / "dist"
        _run(
            [python, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(clone)],
            work,
            env,
            600,
        )
        (wheel,) = dist.glob("rewardlab-*.whl")
        _run([python, "-m", "pip", "uninstall", "-y", "-q", "rewardlab"], work, env, 300)
        _run([python, "-m", "pip", "install", "-q", str(wheel)], work, env, 600)
        installed = json.loads(_run([python, "-c", DUMP], outside, env, 300))
        site = venv / "lib"
        assert Path(installed["package"]).is_relative_to(site), installed["package"]
        assert Path(installed["config_dir"]).is_relative_to(site), installed["config_dir"]
        assert installed["tasks"] == checkout["tasks"] and installed["robots"] == checkout["robots"]
        for task, cfg in checkout["configs"].items():
            assert installed["configs"][task] == cfg, f"{task}: the wheel resolves another config"
        meta = _run([python, "-c", "import importlib.metadata as m; print(m.metadata('rewardlab')['License-Expression'])"], outside, env, 60)  # fmt: skip
        assert meta.strip() == "Apache-2.0"

        rewardlab = str(venv / "bin" / "rewardlab")
        _run([rewardlab, "train", "task=cartpole_balance", "run_dir=wheel_run", SMALL_BUDGET], outside, env, 900)  # fmt: skip
        ours = (outside / "wheel_run" / "config.yaml").read_text().splitlines()
        theirs = (run / "config.yaml").read_text().splitlines()
        differ = [(a, b) for a, b in zip(ours, theirs, strict=True) if a != b]
        assert all(a.startswith("run_dir:") for a, _ in differ), differ
    finally:
        shutil.rmtree(work, ignore_errors=True)
