"""Shared test set-up.

Importing ``rewardlab`` first selects ``MUJOCO_GL=egl`` on headless Linux before any test module
imports mujoco (MuJoCo fixes its OpenGL platform at import).
"""

import rewardlab  # noqa: F401
