"""Domain randomization: per-world physics parameters, observation noise and action delay.

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

What this cannot do: randomize geometry (sizes, positions), joint damping or armature, or
gravity; change the number of worlds' models (every world keeps the same kinematic tree);
add observation noise that depends on the state (it is additive Gaussian).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import mujoco
import numpy as np
import torch

Range = tuple[float, float]


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
    obs_noise_std: float | tuple[float, ...] = 0.0
    """Standard deviation of zero-mean Gaussian noise added to every observation: one number
    for every observation element, or one per element (length ``obs_dim``). Applied on each
    step, including ``info["final_obs"]``; the state rewards read stays noise-free."""
    action_delay: tuple[int, int] = (0, 0)
    """``[lo, hi]`` control steps (inclusive) by which each world's actions reach the actuators,
    drawn per world; ``[0, 0]``: no delay. The state's ``last_action`` stays the policy's
    action."""
    resample_on_reset: bool = True
    """Draw new physics parameters and a new delay for a world whenever it resets (false: drawn
    once, when the env is made)."""
    seed: int | None = None
    """Seed of the randomization's own generator; null: derived from the env's seed."""

    def validate(self) -> None:
        """Raise ``ValueError`` naming the field and what was expected."""
        for name in ("mass_scale", "friction_scale", "actuator_gain_scale"):
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
        lo, hi = self.action_delay
        if not 0 <= lo <= hi:
            raise ValueError(
                f"action_delay: got {list(self.action_delay)!r}, expected [lo, hi] with "
                "0 <= lo <= hi (control steps)"
            )
        if hi > 1000:
            raise ValueError(f"action_delay: got {hi} steps, expected at most 1000")
        if self.mass_bodies and self.mass_scale is None:
            raise ValueError("mass_bodies: set, but mass_scale is null (nothing would change)")

    @property
    def enabled(self) -> bool:
        """Whether anything is randomized."""
        return bool(self.physics_fields() or self.has_obs_noise or self.action_delay[1] > 0)

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
        if _varies(self.actuator_gain_scale):
            out += ["actuator_gainprm", "actuator_biasprm"]
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
                "domain_rand: mass_scale, friction_scale and actuator_gain_scale need a MuJoCo "
                "model (backends mujoco and warp); for Isaac Gym / Isaac Lab use their own "
                "randomization (randomization_params / EventTermCfg) and keep only "
                "obs_noise_std and action_delay here"
            )
        self._nominal = {
            f: torch.as_tensor(np.array(getattr(model, f)), dtype=torch.float64)
            for f in self.physics_fields
        }
        if model is not None:
            self._mass_mask = self._body_mask(model)
            bias_affine = model.actuator_biastype == mujoco.mjtBias.mjBIAS_AFFINE
            self._affine = torch.as_tensor(bias_affine, dtype=torch.bool)
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
        if "actuator_gainprm" in self._nominal:
            gain, bias = self._nominal["actuator_gainprm"], self._nominal["actuator_biasprm"]
            s = self._uniform(cfg.actuator_gain_scale, (n, gain.shape[0]))
            g = gain.expand(n, *gain.shape).clone()
            g[..., 0] *= s
            b = bias.expand(n, *bias.shape).clone()
            scale_b = torch.where(self._affine, s, torch.ones_like(s))
            b[..., 1:3] *= scale_b[..., None]
            out["actuator_gainprm"], out["actuator_biasprm"] = g, b
        for f, v in out.items():
            self._current[f][ids] = v
        return out

    def _uniform(self, r: Range | None, shape: tuple[int, ...]) -> torch.Tensor:
        lo, hi = r if r is not None else (1.0, 1.0)
        u = torch.rand(shape, generator=self._gen, dtype=torch.float64)
        return lo + (hi - lo) * u

    def _body_mask(self, model: mujoco.MjModel) -> torch.Tensor:
        mask = torch.ones(model.nbody, dtype=torch.bool)
        mask[0] = False  # the world body has no mass to scale
        if self.cfg.mass_bodies:
            names = [model.body(i).name for i in range(model.nbody)]
            unknown = [b for b in self.cfg.mass_bodies if b not in names]
            if unknown:
                raise ValueError(
                    f"domain_rand.mass_bodies: unknown bodies {unknown}; the model has "
                    f"{', '.join(n for n in names[1:] if n)}"
                )
            mask[:] = torch.tensor([n in self.cfg.mass_bodies for n in names])
        return mask

    # -- torch parts: delay and noise ------------------------------------------------------------

    def reset(self, ids: torch.Tensor) -> None:
        """Worlds ``ids`` start new episodes: empty their delay buffers, draw new delays."""
        if self.max_delay == 0:
            return
        ids_dev = ids.to(self.device, torch.long)
        if self._history is not None:
            self._history[:, ids_dev] = 0.0
        if self.cfg.resample_on_reset:
            self._draw_delays(ids_dev)

    def _draw_delays(self, ids: torch.Tensor) -> None:
        lo, hi = self.cfg.action_delay
        d = torch.randint(lo, hi + 1, ids.shape, generator=self._tgen, device=self.device)
        self.delays[ids] = d

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
