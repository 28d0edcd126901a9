"""Shim for colcon (``ament_python``) and ``setup.py``-era tools; the metadata is pyproject.toml's.

colcon builds an ``ament_python`` package by running this file. Besides the package it installs
what ROS 2 tools look for: the ament index marker (``resource/rewardlab``), ``package.xml``, the
launch files and the robot configs under ``share/rewardlab/``; ``setup.cfg`` puts the console
scripts into ``lib/rewardlab/`` where ``ros2 run`` finds them. ``pip install -e .`` ignores both
(it builds from pyproject.toml; the data files land in the venv's ``share/rewardlab``).
"""

from glob import glob

from setuptools import setup

dist = setup(
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/rewardlab"]),
        ("share/rewardlab", ["package.xml"]),
        ("share/rewardlab/launch", glob("launch/*.launch.py")),
        ("share/rewardlab/sim_configs/robots", glob("sim_configs/robots/*.yaml")),
    ],
)

# colcon-python-setup-py reads the distribution's attributes back with ast.literal_eval, which
# cannot parse the SpecifierSet that setuptools makes of pyproject's requires-python.
for obj in (dist, getattr(dist, "metadata", None)):
    if obj is not None and getattr(obj, "python_requires", None) is not None:
        obj.python_requires = str(obj.python_requires)
