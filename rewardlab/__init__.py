"""RewardLab: robot control policies from rewards stated in language."""

import os as _os
import sys as _sys

__version__ = "0.1.0"

# MuJoCo picks its OpenGL platform when it is first imported. On headless Linux the only one that
# works is EGL, so choose it here, before any rewardlab module imports mujoco, unless the user
# chose one. (A program that imported mujoco before rewardlab must set MUJOCO_GL itself.)
if _sys.platform.startswith("linux") and not _os.environ.get("DISPLAY"):
    _os.environ.setdefault("MUJOCO_GL", "egl")
