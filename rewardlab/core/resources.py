"""Where the shipped configs live, however RewardLab was installed. No project imports.

``sim_configs/`` (train, search, task and robot YAML) is found, first match winning:

1. ``$REWARDLAB_CONFIG_DIR`` (:func:`config_dir` only; a user's replacement for the whole folder);
2. the package's own copy, ``rewardlab/sim_configs`` through :mod:`importlib.resources` (a wheel,
   ``pip install .``, a colcon install; in a source checkout that is the symlink to the top-level
   ``sim_configs/``, resolved);
3. the folder next to the package in a source tree without that symlink;
4. ``<prefix>/share/rewardlab/sim_configs`` of an ament prefix on ``$AMENT_PREFIX_PATH`` that
   holds the ``rewardlab`` package, or of the prefix the package is installed in (the data files
   ``setup.py`` installs for ROS 2 tools).

Nothing found raises :class:`ConfigsNotFoundError` naming the places looked at: an install without
its configs would otherwise train with silently different settings.
"""

from __future__ import annotations

import os
import sys
from importlib import resources
from pathlib import Path

ENV_VAR = "REWARDLAB_CONFIG_DIR"
"""Environment variable that replaces the whole ``sim_configs/`` folder (:func:`config_dir`)."""

PACKAGE = "rewardlab"
"""Import package (and ament package) whose data this module finds."""

FOLDER = "sim_configs"
"""Name of the config folder in the checkout, in the package and under ``share/rewardlab/``."""


class ConfigsNotFoundError(FileNotFoundError):
    """No ``sim_configs/`` folder in any place RewardLab looks (a broken install)."""

    def __init__(self, looked: list[Path]) -> None:
        places = ", ".join(str(p) for p in looked)
        super().__init__(
            f"rewardlab: no {FOLDER}/ folder found (looked in {places}); reinstall the package "
            f"or set {ENV_VAR} to a copy of the repository's {FOLDER}/"
        )
        self.looked = looked

    def __str__(self) -> str:
        return str(self.args[0])


def _candidates() -> list[Path]:
    """The places :func:`shipped_config_dir` tries, in order."""
    here = Path(__file__).resolve()  # <root>/rewardlab/core/resources.py
    out: list[Path] = []
    packaged = resources.files(PACKAGE) / FOLDER
    if isinstance(packaged, Path):  # a zip import has no folder to hand out
        out.append(packaged.resolve())  # in a checkout, rewardlab/sim_configs -> ../sim_configs
    out.append(here.parents[2] / FOLDER)
    for prefix in filter(None, os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep)):
        marker = Path(prefix) / "share" / "ament_index" / "resource_index" / "packages" / PACKAGE
        if marker.is_file():
            out.append(Path(prefix) / "share" / PACKAGE / FOLDER)
    # <prefix>/lib/pythonX.Y/site-packages/rewardlab/core/resources.py -> <prefix>
    if len(here.parents) > 5:
        out.append(here.parents[5] / "share" / PACKAGE / FOLDER)
    out.append(Path(sys.prefix) / "share" / PACKAGE / FOLDER)
    return list(dict.fromkeys(out))


def shipped_config_dir() -> Path:
    """The ``sim_configs/`` folder that came with this installation (``$REWARDLAB_CONFIG_DIR``
    does not apply).

    Raises:
        ConfigsNotFoundError: no candidate folder exists.
    """
    looked = _candidates()
    for folder in looked:
        if folder.is_dir():
            return folder
    raise ConfigsNotFoundError(looked)


def config_dir() -> Path:
    """The ``sim_configs/`` folder configs are read from: ``$REWARDLAB_CONFIG_DIR`` when set,
    else :func:`shipped_config_dir`.

    Raises:
        ConfigsNotFoundError: the variable is unset and no shipped folder exists.
    """
    env = os.environ.get(ENV_VAR)
    return Path(env) if env else shipped_config_dir()


def configs_path(*parts: str) -> Path:
    """A path under :func:`config_dir`, e.g. ``configs_path("train", "default.yaml")``."""
    return config_dir().joinpath(*parts)
