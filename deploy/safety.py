"""The safety state machine between the policy and the robot.

States::

    PASSIVE --(every input fresh, auto_start or start())--> RAMP --(soft_start_s)--> RUN
    RAMP / RUN --(trip)--> HOLD or DAMP        HOLD --(trip to DAMP)--> DAMP
    HOLD / DAMP --(reset(), e-stop released)--> PASSIVE

- PASSIVE: nothing is commanded (the robot's own controller keeps whatever it had).
- RAMP: the policy runs; its command is blended from the measured pose into the policy's.
- RUN: the policy's command, through the action mapper's clamps.
- HOLD: a position hold at the pose measured when it tripped (stale inputs, lost heartbeat,
  NaN/Inf, over-speed, torque estimate over limit, a malformed message, an exception in the
  policy, the observation or a transport callback): the robot stops where it is.
- DAMP: the command follows the measured pose, so a position servo applies only its damping
  (e-stop, joint limit exceeded, attitude limit exceeded). With a pure position interface this
  is the closest to "motors off with damping" a forward controller can do; robots with a damping
  mode of their own should also wire ``/estop`` to it.

HOLD and DAMP commands go through the same rate limit and clamps as RUN commands (the
controller's job): a trip never makes the command jump.

Trips latch: HOLD and DAMP last until :meth:`SafetyMonitor.reset` (an operator's decision),
and a reset while the e-stop is engaged is refused. HOLD escalates to DAMP, never the reverse.
Nothing but :meth:`SafetyMonitor.enter` from PASSIVE leads to RAMP or RUN.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class SafetyState(str, enum.Enum):
    PASSIVE = "PASSIVE"
    RAMP = "RAMP"
    RUN = "RUN"
    HOLD = "HOLD"
    DAMP = "DAMP"


class Trip(str, enum.Enum):
    """Why the safety layer stopped the policy, and where each trip leads."""

    STALE = "stale"
    HEARTBEAT = "heartbeat"
    NONFINITE = "nonfinite"
    VELOCITY = "velocity"
    TORQUE = "torque"
    JOINT_LIMIT = "joint_limit"
    ATTITUDE = "attitude"
    ESTOP = "estop"
    MALFORMED = "malformed"
    """A message that cannot be read as what its topic carries (lengths, duplicate joints)."""
    FAULT = "fault"
    """An exception in the policy, the observation builder, a transport callback or a publish."""

    @property
    def state(self) -> SafetyState:
        damp = (Trip.JOINT_LIMIT, Trip.ATTITUDE, Trip.ESTOP)
        return SafetyState.DAMP if self in damp else SafetyState.HOLD


@dataclass(frozen=True)
class TripEvent:
    """One trip: when, why, and the state it led to."""

    time: float
    kind: Trip
    reason: str
    state: SafetyState


class SafetyMonitor:
    """Holds the safety state and the trip history (the checks live in the controller)."""

    def __init__(self) -> None:
        self.state = SafetyState.PASSIVE
        self.events: list[TripEvent] = []
        self.estop = False

    @property
    def last_trip(self) -> TripEvent | None:
        return self.events[-1] if self.events else None

    @property
    def active(self) -> bool:
        """The policy is commanding the robot (RAMP or RUN)."""
        return self.state in (SafetyState.RAMP, SafetyState.RUN)

    def trip(self, now: float, kind: Trip, reason: str) -> SafetyState:
        """Enter HOLD or DAMP (never de-escalates DAMP to HOLD); returns the new state."""
        target = kind.state
        if self.state == SafetyState.DAMP:
            target = SafetyState.DAMP
        if self.state != target or not self.events or self.events[-1].kind != kind:
            self.events.append(TripEvent(now, kind, reason, target))
        self.state = target
        return target

    def enter(self, state: SafetyState) -> None:
        """PASSIVE -> RAMP -> RUN transitions (trips go through :meth:`trip`)."""
        allowed = {
            (SafetyState.PASSIVE, SafetyState.RAMP),
            (SafetyState.RAMP, SafetyState.RUN),
            (SafetyState.PASSIVE, SafetyState.RUN),
        }
        if (self.state, state) not in allowed:
            raise RuntimeError(f"safety state: {self.state.value} -> {state.value} is not allowed")
        self.state = state

    def reset(self) -> bool:
        """Re-arm after a trip: HOLD/DAMP -> PASSIVE. Refused (returns False) while e-stopped."""
        if self.estop:
            return False
        if self.state in (SafetyState.HOLD, SafetyState.DAMP):
            self.state = SafetyState.PASSIVE
        return True
