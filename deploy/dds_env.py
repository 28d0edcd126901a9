"""Environment of ROS 2 processes started from Python wheels (rclpy from PyPI: Fast DDS only).

Two facts found by testing rclpy (``ros-rclpy`` wheels, Fast DDS 3) against cyclonedds over
loopback (``tests/test_deploy_ros.py::test_cyclonedds_rclpy_interop``):

- Fast DDS sends XTypes type objects that Cyclone DDS rejects ("invalid type object"); Cyclone
  then never matches the endpoints. With the participant property
  ``fastdds.type_propagation = disabled`` Fast DDS sends no type information and the two match by
  type name, as ROS 2 type names are the same on both (``sensor_msgs::msg::dds_::JointState_``).
  :data:`FASTDDS_INTEROP_PROFILE` is a Fast DDS XML default profile saying that.
- The PyPI wheels ship ``rmw_fastrtps_cpp`` only: ``RMW_IMPLEMENTATION`` must name it (or stay
  unset).

This module imports nothing from ROS.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

FASTDDS_INTEROP_PROFILE = Path(__file__).resolve().parent / "fastdds_interop.xml"
"""Fast DDS XML profile: a default participant profile with type propagation disabled."""


def dds_environment(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Variables to add to ``env`` (default: ``os.environ``) before rclpy starts.

    Only what the user has not set is added: a robot's own ``FASTDDS_DEFAULT_PROFILES_FILE`` or
    ``RMW_IMPLEMENTATION`` wins (add the type-propagation property to that profile to talk to
    Cyclone DDS peers).
    """
    env = os.environ if env is None else env
    out: dict[str, str] = {}
    if not env.get("FASTDDS_DEFAULT_PROFILES_FILE"):
        out["FASTDDS_DEFAULT_PROFILES_FILE"] = str(FASTDDS_INTEROP_PROFILE)
    if not env.get("RMW_IMPLEMENTATION"):
        out["RMW_IMPLEMENTATION"] = "rmw_fastrtps_cpp"
    return out


def apply_dds_environment() -> None:
    """Set :func:`dds_environment` in ``os.environ`` (call before importing rclpy)."""
    os.environ.update(dds_environment())
