"""Shim for colcon (``ament_python``) and ``setup.py``-era tools; the metadata is pyproject.toml's.

colcon builds an ``ament_python`` package by running this file. Besides the package it installs
what ROS 2 tools look for: the ament index marker (``resource/rewardlab``), ``package.xml``, the
launch files and ``sim_configs/`` under ``share/rewardlab/``; ``setup.cfg`` puts the console
scripts into ``lib/rewardlab/`` where ``ros2 run`` finds them. pip builds from pyproject.toml
through this file too: the data files land in the venv's ``share/rewardlab`` and setup.cfg's
options do not apply (pip installs the scripts into the venv's ``bin/``).
"""

from glob import glob
from pathlib import Path
from typing import Any

import setuptools
from setuptools import setup

LICENSE = "Apache-2.0"

# pyproject.toml declares `license` dynamic: setuptools >= 77 (what pip builds with, see
# build-system.requires) writes it as an SPDX License-Expression; the setuptools 68 of ROS 2 Jazzy's
# system Python, which colcon uses, rejects that form and gets the plain License field instead.
_new_setuptools = int(setuptools.__version__.split(".")[0]) >= 77
license_kw = {"license_expression": LICENSE} if _new_setuptools else {"license": LICENSE}

# Every config folder under share/rewardlab/sim_configs/ (where ament tools look); the package
# itself also carries them as package data (rewardlab/sim_configs, see rewardlab.core.resources).
config_dirs = sorted({p.parent for p in Path("sim_configs").rglob("*") if p.is_file()})
configs = [
    (f"share/rewardlab/{d.as_posix()}", sorted(f.as_posix() for f in d.iterdir() if f.is_file()))
    for d in config_dirs
]

dist = setup(
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/rewardlab"]),
        ("share/rewardlab", ["package.xml"]),
        ("share/rewardlab/launch", glob("launch/*.launch.py")),
        *configs,
    ],
    **license_kw,
)

# colcon-python-setup-py reads the distribution's attributes back with ast.literal_eval, which
# cannot parse the SpecifierSet that setuptools makes of pyproject's requires-python.
holders: tuple[Any, ...] = (dist, getattr(dist, "metadata", None))
for obj in holders:
    if obj is not None and getattr(obj, "python_requires", None) is not None:
        obj.python_requires = str(obj.python_requires)
