"""The repository as a ROS 2 ament_python package: package.xml, the setup.py shim, setup.cfg,
the launch file, the console script, and (tier ``ros``) a real ``colcon build``."""

from __future__ import annotations

import ast
import configparser
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

REPO = Path(__file__).resolve().parent.parent


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


@pytest.mark.unit
def test_package_xml_is_a_valid_format3_ament_python_manifest() -> None:
    from catkin_pkg.package import parse_package

    pkg = parse_package(str(REPO))  # validates the manifest (raises InvalidPackage)
    assert pkg.package_format == 3
    assert pkg.name == "rewardlab" == _pyproject()["project"]["name"]
    assert pkg.version == _pyproject()["project"]["version"]
    assert pkg.get_build_type() == "ament_python"
    exec_deps = {d.name for d in pkg.exec_depends}
    needed = {"rclpy", "sensor_msgs", "std_msgs", "geometry_msgs", "trajectory_msgs"}
    assert needed <= exec_deps, f"missing exec_depends: {needed - exec_deps}"
    assert "python3-numpy" in exec_deps
    # every message package the node imports is declared
    node_src = (REPO / "deploy" / "ros_node.py").read_text()
    imported = {
        line.split()[1].split(".")[0]
        for line in node_src.splitlines()
        if line.strip().startswith("from ") and "_msgs.msg" in line
    }
    assert imported and imported <= exec_deps, imported - exec_deps


def _setup_py_data() -> dict:
    """What colcon (colcon-python-setup-py) reads from setup.py: run_setup up to 'config',
    then the distribution's attributes, read back with ast.literal_eval as colcon does."""
    code = (
        "import setuptools; from distutils.core import run_setup\n"
        "d = run_setup('setup.py', script_args=('--dry-run',), stop_after='config')\n"
        "print(repr({'data_files': d.data_files, 'entry_points': d.entry_points,"
        " 'python_requires': d.python_requires, 'name': d.metadata.name,"
        " 'command_options': d.command_options}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    return ast.literal_eval(out.strip().splitlines()[-1])


@pytest.mark.unit
def test_setup_py_shim_installs_what_ros_tools_look_for() -> None:
    data = _setup_py_data()  # literal_eval succeeds: python_requires is a plain string
    assert data["name"] == "rewardlab"
    assert isinstance(data["python_requires"], str)
    files = {dst: srcs for dst, srcs in data["data_files"]}
    assert files["share/ament_index/resource_index/packages"] == ["resource/rewardlab"]
    assert (REPO / "resource" / "rewardlab").is_file()
    assert files["share/rewardlab"] == ["package.xml"]
    assert "launch/deploy.launch.py" in files["share/rewardlab/launch"]
    assert "sim_configs/robots/arm.yaml" in files["share/rewardlab/sim_configs/robots"]
    # every config file, in its folder under share/rewardlab/ (where ament tools look)
    shipped = {
        src
        for dst, srcs in files.items()
        if dst.startswith("share/rewardlab/sim_configs")
        for src in srcs
    }
    configs = {
        p.relative_to(REPO).as_posix() for p in (REPO / "sim_configs").rglob("*") if p.is_file()
    }
    assert shipped == configs, configs ^ shipped
    for dst, srcs in files.items():
        if dst.startswith("share/rewardlab/sim_configs"):
            assert all(dst == f"share/rewardlab/{Path(s).parent.as_posix()}" for s in srcs), dst
    scripts = data["entry_points"]["console_scripts"]
    assert "rewardlab-deploy = rewardlab.deploy.cli:deploy_main" in scripts
    # setup.cfg: console scripts into lib/<package>, where `ros2 run` looks
    opts = data["command_options"]
    assert opts["install"]["install_scripts"][1] == "$base/lib/rewardlab"
    assert opts["develop"]["script_dir"][1] == "$base/lib/rewardlab"
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    assert set(cfg.sections()) == {"develop", "install"}, "setup.cfg must not carry metadata"


@pytest.mark.unit
def test_console_script_and_launch_file_agree() -> None:
    scripts = _pyproject()["project"]["scripts"]
    assert scripts["rewardlab-deploy"] == "rewardlab.deploy.cli:deploy_main"
    from rewardlab.deploy.cli import DeployArgs, deploy_main

    assert callable(deploy_main)
    tree = ast.parse((REPO / "launch" / "deploy.launch.py").read_text())
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    node_kw = next(
        {k.arg: k.value for k in c.keywords} for c in calls if getattr(c.func, "id", None) == "Node"
    )
    assert ast.literal_eval(node_kw["package"]) == "rewardlab"
    assert ast.literal_eval(node_kw["executable"]) == "rewardlab-deploy"
    declared = {
        ast.literal_eval(c.args[0])
        for c in calls
        if getattr(c.func, "id", None) == "DeclareLaunchArgument"
    }
    fields = {f for f in DeployArgs.__dataclass_fields__}
    assert {"policy", "robot"} <= declared <= fields, declared - fields
    assert any(getattr(n, "name", None) == "generate_launch_description" for n in ast.walk(tree))


@pytest.mark.unit
def test_deploy_main_reads_ros_parameters(tmp_path: Path) -> None:
    """``ros2 run ... --ros-args -p key:=v`` and launch_ros' ``--params-file`` reach DeployArgs."""
    from rewardlab.deploy.cli import DeployArgs, _split_ros_args, build_args, parse_words

    params = tmp_path / "params.yaml"
    params.write_text("/**:\n  ros__parameters:\n    policy: runs/x/export\n    robot: arm\n")
    words, ros = _split_ros_args(
        ["trigger=timer", "--ros-args", "-p", "control_rate_hz:=100.0", "--params-file", str(params),
         "-r", "__node:=other"]
    )  # fmt: skip
    args = build_args(DeployArgs, parse_words(words))
    assert (args.policy, args.robot, args.trigger, args.control_rate_hz) == (
        "runs/x/export", "arm", "timer", 100.0,
    )  # fmt: skip
    assert ros[0] == "--ros-args" and "-r" in ros


@pytest.mark.ros
def test_colcon_build_installs_a_runnable_package(tmp_path: Path) -> None:
    """A real ``colcon build`` (colcon-core + colcon-ros from PyPI) of this repository."""
    colcon = shutil.which("colcon") or str(Path(sys.executable).parent / "colcon")
    if not Path(colcon).exists():
        pytest.skip("colcon is not installed (make install-ros installs it)")
    src = tmp_path / "ws" / "src"
    src.mkdir(parents=True)
    (src / "rewardlab").symlink_to(REPO)
    ws = tmp_path / "ws"
    res = subprocess.run(
        [colcon, "--log-base", "log", "build", "--base-paths", "src",
         "--build-base", "build", "--install-base", "install"],
        cwd=ws, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    prefix = ws / "install" / "rewardlab"
    assert (prefix / "share/ament_index/resource_index/packages/rewardlab").is_file()
    assert (prefix / "share/rewardlab/package.xml").is_file()
    assert (prefix / "share/rewardlab/launch/deploy.launch.py").is_file()
    assert (prefix / "share/rewardlab/sim_configs/train/default.yaml").is_file()
    exe = prefix / "lib" / "rewardlab" / "rewardlab-deploy"
    assert exe.is_file() and os.access(exe, os.X_OK)
    # What `ros2 run rewardlab rewardlab-deploy` does: find the package prefix through the ament
    # index, then run lib/<package>/<executable>.
    site = next((prefix / "lib").glob("python3*/site-packages"))
    env = dict(os.environ, AMENT_PREFIX_PATH=str(prefix), PYTHONPATH=str(site))
    code = (
        "from ament_index_python.packages import get_package_prefix, get_package_share_directory;"
        "print(get_package_prefix('rewardlab')); print(get_package_share_directory('rewardlab'))"
    )
    found = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert found == [str(prefix), str(prefix / "share" / "rewardlab")]
    # the installed package finds its own configs (not the checkout's) and its YAML task
    code = (
        "from rewardlab.core.resources import config_dir; from rewardlab.envs import task_names;"
        "from rewardlab.deploy.robot_config import robot_names;"
        "print(config_dir()); print('pendulum_swingup' in task_names(), robot_names())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    where, tasks = out.stdout.strip().splitlines()[-2:]
    assert Path(where).resolve().is_relative_to(prefix.resolve()), where
    # every robot config shipped in sim_configs/robots (arm, go1, ...)
    assert tasks.startswith("True [") and "'arm'" in tasks, tasks
    out = subprocess.run([str(exe), "--help"], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "policy=" in out.stdout, out.stdout + out.stderr
    bad = subprocess.run(
        [str(exe), "robot=arm", "transport=dds"], env=env, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert bad.returncode == 2 and "policy: required" in bad.stderr
