"""Policy actions -> joint position commands, through every clamp of the safety layer.

Per control tick, in this order (each step only ever moves the command towards safety):

1. clip the action to ``[-1, 1]`` (what the trainer's env did);
2. scale: ``q_target = offset + scale * action`` with ``offset, scale`` the sidecar's
   ``ctrl_mid, ctrl_half`` (the scaling the policy was trained with), or the robot config's
   ``default_pose, action_scale`` when it sets ``action_scale``;
3. soft start: during RAMP, ``q_target = q_start + alpha (q_target - q_start)`` with ``alpha``
   rising linearly from 0 to 1 over ``soft_start_s`` (``q_start``: the measured pose at RAMP entry);
4. rate limit: the command moves at most ``rate_limit`` rad per tick from the previous command;
5. torque clamp: the command is kept where the servo's torque estimate
   ``kp (q_cmd - q) - kd qd`` is within ``effort_limits`` (the same torque a saturated
   MuJoCo position servo applies, so it does not change what the policy was trained on), as far
   as the rate limit allows: when the band lies beyond the step the rate limit allows (the
   measured pose jumped: a glitch, a robot moved by hand, a sim reset), the command walks
   towards it at the rate limit (``MappedAction.torque_out_of_reach``);
6. joint-limit clamp into ``position_limits`` (last: limits win over everything). The previous
   command is always within the limits, so this clamp never makes a step longer.

HOLD and DAMP commands go through steps 4-6 too (:meth:`ActionMapper.limit`).

Only position commands are produced: torque-controlled policies are not supported here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rewardlab.deploy.robot_config import RobotConfig


@dataclass
class MappedAction:
    """A command and which clamps changed it (per joint booleans)."""

    positions: np.ndarray
    """Joint position command (rad), robot joint order."""
    target: np.ndarray
    """The unclamped ``offset + scale * clip(action)`` (before soft start and clamps)."""
    clipped_action: np.ndarray
    """The action after clipping to [-1, 1] (what the policy observes as ``last_action``)."""
    rate_limited: np.ndarray
    torque_limited: np.ndarray
    position_limited: np.ndarray
    torque_out_of_reach: np.ndarray | None = None
    """Joints whose torque band lies beyond this tick's rate-limited step (the measured pose
    jumped): the command walks towards the band at the rate limit."""


def _clip(x: np.ndarray, lo: np.ndarray | float, hi: np.ndarray | float) -> np.ndarray:
    """``np.clip`` for the few-element arrays of a tick, without its wrapper's overhead (NaN
    bounds are never passed: the torque band replaces them with infinities)."""
    return np.minimum(np.maximum(x, lo), hi)


class ActionMapper:
    """Maps actions to safe joint position commands (see the module docstring for the order).

    Args:
        robot: the robot config (limits, gains, rate limit).
        offset: command of action 0, per joint (the sidecar's ``ctrl_mid``), or ``None``.
        scale: radians per unit action (the sidecar's ``ctrl_half``), or ``None``.
            When the robot config sets ``action_scale``, ``default_pose`` and ``action_scale``
            are used instead; when neither is given, ``ValueError``.
    """

    def __init__(
        self, robot: RobotConfig, offset: np.ndarray | None = None, scale: np.ndarray | None = None
    ) -> None:
        n = robot.num_joints
        if robot.action_scale:
            offset, scale = np.asarray(robot.default_pose), np.asarray(robot.action_scale)
        if offset is None or scale is None:
            raise ValueError(
                "action scaling: the policy sidecar has no action.ctrl_mid/ctrl_half and the robot "
                "config sets no action_scale"
            )
        self.offset = np.asarray(offset, dtype=np.float64).reshape(-1)
        self.scale = np.asarray(scale, dtype=np.float64).reshape(-1)
        if self.offset.shape != (n,) or self.scale.shape != (n,):
            raise ValueError(
                f"action scaling: {self.offset.size} offsets and {self.scale.size} scales for {n} joints"
            )
        self.lower, self.upper = np.asarray(robot.position_limits, dtype=np.float64).T
        self.rate = float(robot.rate_limit)
        self.kp = np.asarray(robot.kp or np.zeros(n), dtype=np.float64)
        self.kd = np.asarray(robot.kd or np.zeros(n), dtype=np.float64)
        self.effort = np.asarray(robot.effort_limits, dtype=np.float64)
        self._free = self.kp <= 0  # no servo gain: no torque band
        self._inv_kp = np.divide(1.0, self.kp, out=np.zeros(n), where=~self._free)

    def target(self, action: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(clip(action), offset + scale * clip(action))``."""
        a = _clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        return a, self.offset + self.scale * a

    def torque_band(self, q: np.ndarray, qd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Commands whose torque estimate ``kp (c - q) - kd qd`` lies within the effort limits
        (``-inf, inf`` for joints with ``kp == 0``)."""
        damping = self.kd * qd
        lo = q + (damping - self.effort) * self._inv_kp
        hi = q + (damping + self.effort) * self._inv_kp
        if self._free.any():
            lo[self._free], hi[self._free] = -np.inf, np.inf
        return lo, hi

    def estimated_torque(self, q_cmd: np.ndarray, q: np.ndarray, qd: np.ndarray) -> np.ndarray:
        """Servo torque estimate ``kp (q_cmd - q) - kd qd`` (N m)."""
        return self.kp * (q_cmd - q) - self.kd * qd

    def limit(
        self,
        desired: np.ndarray,
        previous: np.ndarray,
        q: np.ndarray | None,
        qd: np.ndarray | None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Steps 4-6 on a desired command: ``(command, rate_limited, torque_limited, position_limited)``.

        ``q, qd`` ``None`` (no fresh finite measurement): no torque clamp; a joint whose band is
        not a number (NaN in ``q`` or ``qd``) is not torque-clamped either.
        """
        return self._limit(desired, previous, q, qd)[:4]

    def _limit(
        self,
        desired: np.ndarray,
        previous: np.ndarray,
        q: np.ndarray | None,
        qd: np.ndarray | None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        step_lo, step_hi = previous - self.rate, previous + self.rate
        cmd = _clip(desired, step_lo, step_hi)
        rate_limited = np.abs(desired - previous) > self.rate + 1e-12
        if q is None or qd is None:
            lo, hi = np.full_like(cmd, -np.inf), np.full_like(cmd, np.inf)
        elif np.isfinite(q).all() and np.isfinite(qd).all():
            lo, hi = self.torque_band(q, qd)
        else:  # no band for a joint whose measurement is not a number
            with np.errstate(invalid="ignore", over="ignore"):
                lo, hi = self.torque_band(q, qd)
            lo, hi = np.where(np.isnan(lo), -np.inf, lo), np.where(np.isnan(hi), np.inf, hi)
        torque_limited = (cmd < lo) | (cmd > hi)
        banded = _clip(cmd, lo, hi)
        cmd = _clip(banded, step_lo, step_hi)
        # the band lies beyond this tick's step but within the joint limits: walk towards it
        out_of_reach = (banded != cmd) & (hi >= self.lower) & (lo <= self.upper)
        position_limited = (cmd < self.lower) | (cmd > self.upper)
        cmd = _clip(cmd, self.lower, self.upper)
        return cmd, rate_limited, torque_limited, position_limited, out_of_reach

    def map(
        self,
        action: np.ndarray,
        previous: np.ndarray,
        q: np.ndarray,
        qd: np.ndarray,
        ramp_alpha: float = 1.0,
        ramp_start: np.ndarray | None = None,
    ) -> MappedAction:
        """One tick: action -> command (steps 1-6).

        Args:
            action: the policy's action (finite; the safety monitor checks that first).
            previous: the previous tick's command (the measured pose on the first tick).
            q, qd: measured joint positions and velocities, robot order.
            ramp_alpha: soft-start fraction in [0, 1] (1: no ramp).
            ramp_start: measured pose when the ramp began (required when ``ramp_alpha < 1``).
        """
        a, target = self.target(action)
        desired = target
        alpha = min(max(float(ramp_alpha), 0.0), 1.0)
        if alpha < 1.0:
            if ramp_start is None:
                raise ValueError("ramp_start is required while ramping")
            desired = ramp_start + alpha * (target - ramp_start)
        previous = np.asarray(previous, dtype=np.float64)
        cmd, rate, torque, pos, reach = self._limit(desired, previous, q, qd)
        return MappedAction(cmd, target, a, rate, torque, pos, reach)
