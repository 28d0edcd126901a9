"""Domain randomization: per-world physics parameters, observation noise and latency, action
delay, random pushes; and observation history (the sim-to-real machinery of legged_gym, Isaac
Lab and DrEureka).

:class:`DomainRandConfig` says what to randomize (``TrainConfig.domain_rand`` in a training
config); :class:`DomainRandomizer` draws the values from its own seeded generator, world by world,
and keeps the torch side (observation noise, action delay buffers) that every backend shares.
Backends apply the physics values to their per-world model fields:

- ``mujoco``: ``mujoco.batch.Batch.expand()`` gives each world its own copy of a model field,
  so every world has its own masses, friction and gains (then ``set_const()`` so that the
  constants MuJoCo derives from masses follow).
- ``warp``: the per-world (``nworld``-leading) fields of the MuJoCo Warp model.

The physics values are absolute model-field values (nominal times a per-world scale), so a
backend only writes rows. Scales are drawn uniformly from ``[lo, hi]``, one per world and
randomized element (body, geom, actuator) -- after DrEureka / legged_gym, where each body or
link gets its own draw.

Physics: body masses (``mass_scale``), centres of mass (``com_offset``), sliding friction
(``friction_scale``), motor strength (``actuator_gain_scale``), the servos' PD gains
(``kp_scale``, ``kd_scale``: kp, and kv plus the driven joint's damping). Torch side:
observation noise (``obs_noise_std``) and latency (``obs_delay``), action delay
(``action_delay``), random pushes of free bodies (``push_interval`` / ``push_velocity``).
:class:`ObservationHistory` stacks a task's last ``k`` observations (a task option, so that the
evaluation env, which runs nominal physics, sees the same observation layout).

What this cannot do: randomize geometry (sizes, positions), armature, or gravity; change the
number of worlds' models (every world keeps the same kinematic tree); add observation noise
that depends on the state (it is additive Gaussian).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import mujoco
import numpy as np
import torch

Range = tuple[float, float]
_SCALAR_JOINTS = (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE))


@dataclass(frozen=True)
class DomainRandConfig:
    """What to randomize in the training env, and how much. Empty or default: nothing.

    Scales multiply the model's own value; ``[1.0, 1.0]`` (or null) leaves a quantity alone.
    """

    mass_scale: Range | None = None
    """``[lo, hi]``: each world's body masses (and rotational inertias, by the same factor, so
    that the bodies' shapes stay the same) are the model's times a factor drawn uniformly per
    body per world; null: masses unchanged."""
    mass_bodies: tuple[str, ...] = ()
    """Names of the bodies whose mass ``mass_scale`` changes; empty: every body but the world."""
    friction_scale: Range | None = None
    """``[lo, hi]``: each geom's sliding friction coefficient (``geom_friction[:, 0]``) times a
    factor drawn per geom per world; torsional and rolling friction stay; null: unchanged."""
    actuator_gain_scale: Range | None = None
    """``[lo, hi]``: actuator strength; each actuator's force law is multiplied by a factor drawn
    per actuator per world (``gainprm[0]``, and for affine-bias actuators such as position
    servos also ``biasprm[1:3]``, i.e. kp and kv together, so that the servo still holds its
    target); null: unchanged."""
    com_offset: float | tuple[float, float, float] | None = None
    """Half-width (m) of a uniform offset of each body's centre of mass (``body_ipos``, in the
    body frame), drawn per body per world: one number for x, y and z or one per axis; null:
    unchanged (legged_gym's ``randomize_base_com``)."""
    com_bodies: tuple[str, ...] = ()
    """Names of the bodies whose centre of mass ``com_offset`` moves; empty: every body but the
    world."""
    kp_scale: Range | None = None
    """``[lo, hi]``: each position servo's stiffness kp (``gainprm[0]`` and ``-biasprm[1]``
    together) times a factor drawn per actuator per world; null: unchanged. Composes with
    ``actuator_gain_scale`` (which scales the whole force law)."""
    kd_scale: Range | None = None
    """``[lo, hi]``: each actuator's damping times a factor drawn per actuator per world: the
    servo's kv (``-biasprm[2]``) and the joint damping of the joint it drives (``dof_damping``:
    robots such as the Go1 model their kd there); null: unchanged."""
    obs_noise_std: float | tuple[float, ...] = 0.0
    """Standard deviation of zero-mean Gaussian noise added to every observation: one number
    for every observation element, or one per element (length ``obs_dim``). Applied on each
    step, including ``info["final_obs"]``; the state rewards read stays noise-free."""
    action_delay: tuple[int, int] = (0, 0)
    """``[lo, hi]`` control steps (inclusive) by which each world's actions reach the actuators,
    drawn per world; ``[0, 0]``: no delay. The state's ``last_action`` stays the policy's
    action."""
    obs_delay: tuple[int, int] = (0, 0)
    """``[lo, hi]`` control steps (inclusive) by which each world's observations reach the
    policy (sensor latency), drawn per world; ``[0, 0]``: none. A world that starts an episode
    sees its first observation until that many steps have passed."""
    push_interval: int = 0
    """Control steps between random pushes of every free body (the robot's base), counted per
    world from its episode start; 0: no pushes (legged_gym's ``push_robots``)."""
    push_velocity: float = 0.0
    """Largest velocity change (m/s) of a push: uniform in ``[-v, v]`` on the horizontal x and y
    of each free body's linear velocity."""
    resample_on_reset: bool = True
    """Draw new physics parameters and a new delay for a world whenever it resets (false: drawn
    once, when the env is made)."""
    seed: int | None = None
    """Seed of the randomization's own generator; null: derived from the env's seed."""

    def validate(self) -> None:
        """Raise ``ValueError`` naming the field and what was expected."""
        for name in ("mass_scale", "friction_scale", "actuator_gain_scale", "kp_scale", "kd_scale"):
            r = getattr(self, name)
            if r is None:
                continue
            lo, hi = r
            if not (np.isfinite(lo) and np.isfinite(hi) and 0.0 < lo <= hi):
                raise ValueError(f"{name}: got {list(r)!r}, expected [lo, hi] with 0 < lo <= hi")
        std = self.obs_noise_std
        values = std if isinstance(std, tuple) else (std,)
        if isinstance(std, tuple) and not std:
            raise ValueError("obs_noise_std: got [], expected a number or one per observation")
        if any(not np.isfinite(v) or v < 0 for v in values):
            raise ValueError(f"obs_noise_std: got {std!r}, expected finite values >= 0")
        for name in ("action_delay", "obs_delay"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi:
                raise ValueError(
                    f"{name}: got {list(getattr(self, name))!r}, expected [lo, hi] with "
                    "0 <= lo <= hi (control steps)"
                )
            if hi > 1000:
                raise ValueError(f"{name}: got {hi} steps, expected at most 1000")
        com = self.com_offset
        coms = com if isinstance(com, tuple) else (() if com is None else (com,))
        if isinstance(com, tuple) and len(com) != 3:
            raise ValueError(f"com_offset: got {list(com)!r}, expected one number or three (x, y, z; m)")  # fmt: skip
        if any(not np.isfinite(v) or v < 0 or v > 1.0 for v in coms):
            raise ValueError(f"com_offset: got {com!r}, expected half-widths in [0, 1] m")
        if self.com_bodies and com is None:
            raise ValueError("com_bodies: set, but com_offset is null (nothing would change)")
        if self.push_interval < 0:
            raise ValueError(f"push_interval: got {self.push_interval}, expected >= 0 control steps")  # fmt: skip
        if not (np.isfinite(self.push_velocity) and 0.0 <= self.push_velocity <= 100.0):
            raise ValueError(f"push_velocity: got {self.push_velocity}, expected a number in [0, 100] m/s")  # fmt: skip
        if self.mass_bodies and self.mass_scale is None:
            raise ValueError("mass_bodies: set, but mass_scale is null (nothing would change)")

    @property
    def enabled(self) -> bool:
        """Whether anything is randomized."""
        return bool(
            self.physics_fields()
            or self.has_obs_noise
            or self.action_delay[1] > 0
            or self.obs_delay[1] > 0
            or self.pushes
        )

    @property
    def pushes(self) -> bool:
        """Whether free bodies are pushed."""
        return self.push_interval > 0 and self.push_velocity > 0

    @property
    def transforms_obs(self) -> bool:
        """Whether observations get noise or latency on their way to the policy."""
        return self.has_obs_noise or self.obs_delay[1] > 0

    @property
    def has_obs_noise(self) -> bool:
        std = self.obs_noise_std
        return any(v > 0 for v in (std if isinstance(std, tuple) else (std,)))

    def physics_fields(self) -> tuple[str, ...]:
        """The MjModel fields this config gives per-world values."""
        out: list[str] = []
        if _varies(self.mass_scale):
            out += ["body_mass", "body_inertia"]
        if _varies(self.friction_scale):
            out += ["geom_friction"]
        if any(_varies(r) for r in (self.actuator_gain_scale, self.kp_scale, self.kd_scale)):
            out += ["actuator_gainprm", "actuator_biasprm"]
        if _varies(self.kd_scale):
            out += ["dof_damping"]
        if self.com_offset is not None and any(
            v > 0
            for v in (self.com_offset if isinstance(self.com_offset, tuple) else (self.com_offset,))
        ):
            out += ["body_ipos"]
        return tuple(out)


def _varies(r: Range | None) -> bool:
    return r is not None and tuple(r) != (1.0, 1.0)


class DomainRandomizer:
    """Draws per-world parameters of a :class:`DomainRandConfig` and applies the torch parts.

    Args:
        cfg: the validated config.
        model: the task's MjModel (nominal values and names); ``None`` for simulators that are
            not MuJoCo (the Isaac adapters), which then get only observation noise and action
            delay.
        num_envs: number of worlds.
        seed: the env's seed; the generator uses ``cfg.seed`` when set, else this plus a fixed
            offset, so that the randomization stream never equals the reset stream.
        device: device of the delay buffers and the noise (the env's action/observation device).

    Attributes:
        physics_fields: the MjModel fields :meth:`sample_physics` returns.
        delays: ``[N]`` long, each world's current action delay in control steps.
    """

    SEED_OFFSET = 7919

    def __init__(
        self,
        cfg: DomainRandConfig,
        model: mujoco.MjModel | None,
        num_envs: int,
        seed: int = 0,
        device: str | torch.device = "cpu",
    ) -> None:
        cfg.validate()
        self.cfg = cfg
        self.num_envs = num_envs
        self.device = torch.device(device)
        self.physics_fields = cfg.physics_fields()
        # physics draws on the CPU (written into model rows); delays and noise on the env's
        # device, so that a GPU backend never waits for the host per step
        self._gen = torch.Generator(device="cpu")
        self._tgen = torch.Generator(device=self.device)
        self.seed(seed)
        if model is None and self.physics_fields:
            raise ValueError(
                "domain_rand: mass_scale, com_offset, friction_scale, actuator_gain_scale, "
                "kp_scale and kd_scale need a MuJoCo model (backends mujoco and warp); for Isaac "
                "Gym / Isaac Lab use their own randomization (randomization_params / "
                "EventTermCfg) and keep only obs_noise_std, obs_delay and action_delay here"
            )
        self._nominal = {
            f: torch.as_tensor(np.array(getattr(model, f)), dtype=torch.float64)
            for f in self.physics_fields
        }
        if cfg.pushes and model is None:
            raise ValueError("domain_rand: push_interval / push_velocity need a MuJoCo model (free bodies to push)")  # fmt: skip
        self._push_dofs = torch.zeros(0, dtype=torch.long)
        if model is not None:
            self._mass_mask = self._body_mask(model, cfg.mass_bodies, "mass_bodies")
            self._com_mask = self._body_mask(model, cfg.com_bodies, "com_bodies")
            bias_affine = model.actuator_biastype == mujoco.mjtBias.mjBIAS_AFFINE
            self._affine = torch.as_tensor(bias_affine, dtype=torch.bool)
            # the dof each actuator drives (joint transmissions of hinge/slide joints), for kd
            dofs = [
                int(model.jnt_dofadr[model.actuator_trnid[i, 0]])
                if int(model.actuator_trntype[i]) == int(mujoco.mjtTrn.mjTRN_JOINT)
                and int(model.jnt_type[model.actuator_trnid[i, 0]]) in _SCALAR_JOINTS
                else -1
                for i in range(model.nu)
            ]  # fmt: skip
            self._act_dof = torch.as_tensor(dofs, dtype=torch.long)
            free = [int(model.jnt_dofadr[j]) for j in range(model.njnt) if int(model.jnt_type[j]) == int(mujoco.mjtJoint.mjJNT_FREE)]  # fmt: skip
            self._push_dofs = torch.as_tensor([[d, d + 1] for d in free], dtype=torch.long).reshape(-1)  # fmt: skip
            if cfg.pushes and not free:
                raise ValueError("domain_rand.push_interval: the model has no free body to push")
        # the current per-world values, so that checkpoints can rewrite them into a model
        self._current = {f: v.expand(num_envs, *v.shape).clone() for f, v in self._nominal.items()}
        std = cfg.obs_noise_std
        self._obs_std = torch.as_tensor(std, dtype=torch.float32, device=self.device)
        self.max_delay = cfg.action_delay[1]
        self.delays = torch.zeros(num_envs, dtype=torch.long, device=self.device)
        # ring of the last max_delay + 1 actions per world; slot _ptr is the newest
        self._history: torch.Tensor | None = None
        self._ptr = 0
        self._rows = torch.arange(num_envs, device=self.device)
        if self.max_delay > 0:
            self._draw_delays(torch.arange(num_envs, device=self.device))
        # observation latency: a ring of the last max_obs_delay + 1 observations per world
        self.max_obs_delay = cfg.obs_delay[1]
        self.obs_delays = torch.zeros(num_envs, dtype=torch.long, device=self.device)
        self._obs_history: torch.Tensor | None = None
        self._obs_ptr = 0
        self._obs_fresh = torch.ones(num_envs, dtype=torch.bool, device=self.device)
        if self.max_obs_delay > 0:
            self._draw_obs_delays(torch.arange(num_envs, device=self.device))

    # -- seeding and checkpoints -----------------------------------------------------------------

    def seed(self, seed: int) -> None:
        """Reseed the generators (``cfg.seed`` wins when set)."""
        base = self.cfg.seed if self.cfg.seed is not None else seed + self.SEED_OFFSET
        self._gen.manual_seed(base)
        self._tgen.manual_seed(base + 1)

    def state_dict(self) -> dict[str, Any]:
        """Generator, current per-world parameters, delays and delay buffers."""
        return {
            "generator": self._gen.get_state(),
            "device_generator": self._tgen.get_state(),
            "physics": {f: v.clone() for f, v in self._current.items()},
            "delays": self.delays.cpu().clone(),
            "history": None if self._history is None else self._history.cpu().clone(),
            "history_ptr": self._ptr,
            "obs_delays": self.obs_delays.cpu().clone(),
            "obs_history": None if self._obs_history is None else self._obs_history.cpu().clone(),
            "obs_ptr": self._obs_ptr,
            "obs_fresh": self._obs_fresh.cpu().clone(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; the backend then rewrites :meth:`current_physics`."""
        self._gen.set_state(state["generator"])
        self._tgen.set_state(state["device_generator"])
        for f, v in state["physics"].items():
            if f not in self._current or self._current[f].shape != v.shape:
                raise ValueError(
                    f"domain_rand: saved field {f!r} {tuple(v.shape)} does not fit this env "
                    f"({None if f not in self._current else tuple(self._current[f].shape)})"
                )
            self._current[f].copy_(v)
        self.delays = state["delays"].to(self.device).clone()
        hist = state["history"]
        self._history = None if hist is None else hist.to(self.device).clone()
        self._ptr = int(state.get("history_ptr", 0))
        if "obs_delays" in state:  # snapshots from before observation latency have none
            self.obs_delays = state["obs_delays"].to(self.device).clone()
            oh = state["obs_history"]
            self._obs_history = None if oh is None else oh.to(self.device).clone()
            self._obs_ptr = int(state["obs_ptr"])
            self._obs_fresh = state["obs_fresh"].to(self.device).clone()

    # -- physics ---------------------------------------------------------------------------------

    def current_physics(self) -> dict[str, torch.Tensor]:
        """Every world's current values of :attr:`physics_fields`, ``[N, *field.shape]`` float64."""
        return self._current

    def sample_physics(self, ids: torch.Tensor) -> dict[str, torch.Tensor]:
        """Draw new parameters for worlds ``ids``; returns ``{field: [len(ids), ...] float64}``.

        The values are absolute (nominal times the drawn scale) and also become
        :meth:`current_physics` rows.
        """
        ids = ids.to("cpu", torch.long)
        n = len(ids)
        out: dict[str, torch.Tensor] = {}
        cfg = self.cfg
        if "body_mass" in self._nominal:
            nb = self._nominal["body_mass"].shape[0]
            s = self._uniform(cfg.mass_scale, (n, nb))
            s = torch.where(self._mass_mask, s, torch.ones_like(s))
            out["body_mass"] = self._nominal["body_mass"] * s
            out["body_inertia"] = self._nominal["body_inertia"] * s[..., None]
        if "geom_friction" in self._nominal:
            nominal = self._nominal["geom_friction"]
            s = self._uniform(cfg.friction_scale, (n, nominal.shape[0]))
            fr = nominal.expand(n, *nominal.shape).clone()
            fr[..., 0] *= s
            out["geom_friction"] = fr
        if "body_ipos" in self._nominal:
            nominal = self._nominal["body_ipos"]
            half = torch.as_tensor(cfg.com_offset, dtype=torch.float64).expand(3)
            u = torch.rand((n, nominal.shape[0], 3), generator=self._gen, dtype=torch.float64)
            off = (2.0 * u - 1.0) * half * self._com_mask[None, :, None]
            out["body_ipos"] = nominal + off
        if "actuator_gainprm" in self._nominal:
            gain, bias = self._nominal["actuator_gainprm"], self._nominal["actuator_biasprm"]
            na = gain.shape[0]
            strength = self._uniform(cfg.actuator_gain_scale, (n, na))
            kp = strength * self._uniform(cfg.kp_scale, (n, na))
            kd = self._uniform(cfg.kd_scale, (n, na))
            g = gain.expand(n, *gain.shape).clone()
            g[..., 0] *= kp
            b = bias.expand(n, *bias.shape).clone()
            one = torch.ones_like(kp)
            b[..., 1] *= torch.where(self._affine, kp, one)
            b[..., 2] *= torch.where(self._affine, strength * kd, one)
            out["actuator_gainprm"], out["actuator_biasprm"] = g, b
            if "dof_damping" in self._nominal:
                damping = self._nominal["dof_damping"].expand(n, -1).clone()
                driven = self._act_dof >= 0
                cols = self._act_dof[driven]
                damping[:, cols] = damping[:, cols] * kd[:, driven]
                out["dof_damping"] = damping
        for f, v in out.items():
            self._current[f][ids] = v
        return out

    def _uniform(self, r: Range | None, shape: tuple[int, ...]) -> torch.Tensor:
        lo, hi = r if r is not None else (1.0, 1.0)
        u = torch.rand(shape, generator=self._gen, dtype=torch.float64)
        return lo + (hi - lo) * u

    @staticmethod
    def _body_mask(model: mujoco.MjModel, bodies: tuple[str, ...], key: str) -> torch.Tensor:
        mask = torch.ones(model.nbody, dtype=torch.bool)
        mask[0] = False  # the world body has no mass to scale
        if bodies:
            names = [model.body(i).name for i in range(model.nbody)]
            unknown = [b for b in bodies if b not in names]
            if unknown:
                raise ValueError(
                    f"domain_rand.{key}: unknown bodies {unknown}; the model has "
                    f"{', '.join(n for n in names[1:] if n)}"
                )
            mask[:] = torch.tensor([n in bodies for n in names])
        return mask

    # -- torch parts: delay and noise ------------------------------------------------------------

    def reset(self, ids: torch.Tensor) -> None:
        """Worlds ``ids`` start new episodes: empty their delay buffers, draw new delays."""
        ids_dev = ids.to(self.device, torch.long)
        if self.max_obs_delay > 0:
            self._obs_fresh[ids_dev] = True  # their next observation fills their history
            if self.cfg.resample_on_reset:
                self._draw_obs_delays(ids_dev)
        if self.max_delay == 0:
            return
        if self._history is not None:
            self._history[:, ids_dev] = 0.0
        if self.cfg.resample_on_reset:
            self._draw_delays(ids_dev)

    def _draw_delays(self, ids: torch.Tensor) -> None:
        lo, hi = self.cfg.action_delay
        d = torch.randint(lo, hi + 1, ids.shape, generator=self._tgen, device=self.device)
        self.delays[ids] = d

    def _draw_obs_delays(self, ids: torch.Tensor) -> None:
        lo, hi = self.cfg.obs_delay
        d = torch.randint(lo, hi + 1, ids.shape, generator=self._tgen, device=self.device)
        self.obs_delays[ids] = d

    def push(self, qvel: torch.Tensor, episode_steps: torch.Tensor) -> None:
        """Random pushes: add a uniform ``[-push_velocity, push_velocity]`` velocity change to the
        horizontal linear velocity of every free body of the worlds whose episode step count
        ``episode_steps`` ``[N]`` (steps done before this one) is a positive multiple of
        ``push_interval``; ``qvel`` ``[N, nv]`` is written in place (before the physics step)."""
        if not self.cfg.pushes or not len(self._push_dofs):
            return
        steps = episode_steps.to(self.device)
        due = ((steps > 0) & (steps % self.cfg.push_interval == 0)).nonzero().squeeze(-1)
        if not len(due):
            return
        dofs = self._push_dofs.to(qvel.device)
        u = torch.rand((len(due), len(dofs)), generator=self._tgen, device=self.device, dtype=torch.float64)  # fmt: skip
        dv = ((2.0 * u - 1.0) * self.cfg.push_velocity).to(qvel.device, qvel.dtype)
        rows = due.to(qvel.device)
        qvel[rows[:, None], dofs[None, :]] += dv

    def observe(self, obs: torch.Tensor) -> torch.Tensor:
        """What the policy sees of this step's ``obs`` ``[N, D]``: noisy (``obs_noise_std``) and
        ``obs_delays`` steps old (``obs_delay``); call once per env step and at reset."""
        obs = self.noise(obs)
        if self.max_obs_delay == 0:
            return obs
        slots = self.max_obs_delay + 1
        if self._obs_history is None or self._obs_history.shape[1:] != obs.shape:
            self._obs_history = obs.new_zeros(slots, *obs.shape)
            self._obs_ptr = 0
            self._obs_fresh[:] = True
        fresh = self._obs_fresh.to(obs.device)
        if fresh.any():  # a new episode starts with its first observation in every slot
            self._obs_history[:, fresh] = obs[fresh]
            self._obs_fresh[:] = False
        self._obs_ptr = (self._obs_ptr + 1) % slots
        self._obs_history[self._obs_ptr] = obs
        idx = torch.remainder(self._obs_ptr - self.obs_delays, slots).to(obs.device)
        return self._obs_history[idx, self._rows.to(obs.device)]

    def delay(self, action: torch.Tensor) -> torch.Tensor:
        """Push this step's ``[N, A]`` action; return the action each world applies now (its
        action ``delays`` steps ago, zeros before its episode had that many steps)."""
        if self.max_delay == 0:
            return action
        slots = self.max_delay + 1
        if self._history is None or self._history.shape[1:] != action.shape:
            self._history = action.new_zeros(slots, *action.shape)
            self._ptr = 0
        self._ptr = (self._ptr + 1) % slots
        self._history[self._ptr] = action
        idx = torch.remainder(self._ptr - self.delays, slots).to(action.device)
        return self._history[idx, self._rows.to(action.device)]

    def check_obs_dim(self, obs_dim: int) -> None:
        """Raise ``ValueError`` when a per-element ``obs_noise_std`` does not fit ``obs_dim``."""
        std = self._obs_std
        if std.ndim == 1 and std.shape[0] != obs_dim:
            raise ValueError(
                f"domain_rand.obs_noise_std: {std.shape[0]} values, but observations have "
                f"{obs_dim} elements (give one number, or one per element)"
            )

    def noise(self, obs: torch.Tensor) -> torch.Tensor:
        """``obs`` plus zero-mean Gaussian noise of ``obs_noise_std``."""
        if not self.cfg.has_obs_noise:
            return obs
        std = self._obs_std.to(obs.device)
        eps = torch.randn(obs.shape, generator=self._tgen, dtype=obs.dtype, device=self.device)
        eps = eps.to(obs.device)
        return obs + eps * std


class ObservationHistory:
    """The last ``k`` observations of every world, stacked newest first (legged_gym's and Isaac
    Lab's ``history_length``), for a task's ``observation``.

    The task :meth:`push`-es its observation of the state after each control step (in its
    ``after_step``, which the env calls before it builds that step's observation),
    :meth:`clear`-s worlds at reset, and returns :meth:`stack` of its current observation:
    ``[N, k * D]`` = ``[o_t, o_{t-1}, ..., o_{t-k+1}]``, slots before the episode's first step
    repeating its first observation (Isaac Lab's circular buffer after a reset). :meth:`stack`
    only remembers a new episode's first observation (the same value however often it is
    called). Being task state, it is the same in the training and the evaluation env; noise
    and latency (``DomainRandConfig``) apply to the stacked vector.

    Args:
        length: ``k`` >= 1 (1: the observation itself, no buffer).
    """

    def __init__(self, length: int) -> None:
        if not isinstance(length, int) or length < 1:
            raise ValueError(f"obs_history: got {length!r}, expected an integer >= 1")
        self.length = length
        self._past: torch.Tensor | None = None  # [N, k, D] newest first; [:, 0] is o_t after a push
        self._first: torch.Tensor | None = None  # [N, D] the episode's first observation
        self._fresh: torch.Tensor | None = None  # [N] bool: no push since the episode started

    def _ensure(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        n, d = obs.shape
        p = self._past
        if p is None or p.shape[0] != n or p.shape[2] != d or p.device != obs.device:
            self._past = obs.new_zeros(n, self.length, d)
            self._first = obs.new_zeros(n, d)
            self._fresh = torch.ones(n, dtype=torch.bool, device=obs.device)
        assert self._past is not None and self._first is not None and self._fresh is not None
        return self._past, self._first, self._fresh

    def clear(self, ids: torch.Tensor) -> None:
        """Worlds ``ids`` start new episodes."""
        if self._fresh is not None:
            self._fresh[ids.to(self._fresh.device)] = True

    def stack(self, obs: torch.Tensor) -> torch.Tensor:
        """``[N, k * D]``: ``obs`` ``[N, D]`` (this step's) followed by the ``k - 1`` previous."""
        if self.length == 1:
            return obs
        past, first, fresh = self._ensure(obs)
        first[fresh] = obs[fresh]
        k = self.length
        older = torch.where(fresh[:, None, None], obs[:, None, :].expand(-1, k - 1, -1), past[:, 1:])  # fmt: skip
        return torch.cat([obs, older.reshape(obs.shape[0], -1)], -1)

    def push(self, obs: torch.Tensor) -> None:
        """Record ``obs`` ``[N, D]`` as this control step's observation (once per step)."""
        if self.length == 1:
            return
        past, first, fresh = self._ensure(obs)
        base = torch.where(fresh[:, None, None], first[:, None, :].expand_as(past), past)
        self._past = torch.cat([obs[:, None, :], base[:, :-1]], 1)
        fresh[:] = False

    def state_dict(self) -> dict[str, Any]:
        """The buffers (for exact resume)."""
        return {
            k: None if v is None else v.cpu().clone()
            for k, v in (("past", self._past), ("first", self._first), ("fresh", self._fresh))
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        for k in ("past", "first", "fresh"):
            v = state.get(k)
            setattr(self, f"_{k}", None if v is None else torch.as_tensor(v).clone())
