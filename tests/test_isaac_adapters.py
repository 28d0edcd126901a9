"""The Isaac Gym and Isaac Lab adapters, against stand-ins with the real classes' signatures.

Neither simulator installs here (Isaac Gym: NVIDIA download, Python <= 3.8; Isaac Lab 3:
Python 3.12 + Isaac Sim). The stand-ins copy the control flow of the real base classes
(IsaacGymEnvs ``tasks/base/vec_task.py`` ``VecTask.step``; Isaac Lab ``envs/direct_rl_env.py``
``DirectRLEnv.step`` and ``ManagerBasedRLEnv.step``): attribute names, buffer dtypes, the order
of dones / rewards / resets / observations and the return conventions. Their physics is a
cartpole integrated in torch (the classic equations), the task both ship as an example.
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch

from rewardlab.envs import make_env
from rewardlab.envs.adapters.isaacgym import IsaacGymEnv, from_isaacgymenvs
from rewardlab.envs.adapters.isaaclab import IsaacLabEnv, from_isaaclab

pytestmark = pytest.mark.unit


def _cartpole_accel(pos: torch.Tensor, vel: torch.Tensor, force: torch.Tensor) -> torch.Tensor:
    """Classic cart-pole (Barto et al.) accelerations ``[N, 2]`` for cart force ``[N]``."""
    g, mc, mp, length = 9.81, 1.0, 0.1, 0.5
    theta, theta_dot = pos[:, 1], vel[:, 1]
    cos, sin = torch.cos(theta), torch.sin(theta)
    temp = (force + mp * length * theta_dot**2 * sin) / (mc + mp)
    theta_acc = (g * sin - cos * temp) / (length * (4.0 / 3.0 - mp * cos**2 / (mc + mp)))
    x_acc = temp - mp * length * theta_acc * cos / (mc + mp)
    return torch.stack([x_acc, theta_acc], -1)


# -------------------------------------------------------------------------------------------------
# Isaac Gym stand-in: VecTask + IsaacGymEnvs' Cartpole task (tasks/cartpole.py)


class VecTask:
    """IsaacGymEnvs ``VecTask`` control flow (no gym/sim: ``_simulate`` integrates in torch)."""

    def __init__(
        self,
        config,
        rl_device,
        sim_device,
        graphics_device_id,
        headless,
        virtual_screen_capture=False,
        force_render=False,
    ):
        self.cfg = config
        self.device = "cpu" if not config["sim"]["use_gpu_pipeline"] else sim_device
        self.rl_device = rl_device
        self.headless = headless
        self.num_environments = config["env"]["numEnvs"]
        self.num_observations = config["env"].get("numObservations", 0)
        self.num_states = config["env"].get("numStates", 0)
        self.num_actions = config["env"]["numActions"]
        self.control_freq_inv = config["env"].get("controlFrequencyInv", 1)
        self.clip_obs = config["env"].get("clipObservations", np.inf)
        self.clip_actions = config["env"].get("clipActions", np.inf)
        self.dt = config["sim"]["dt"]
        self.control_steps = 0
        self.create_sim()
        self.allocate_buffers()
        self.obs_dict = {}

    @property
    def num_envs(self):
        return self.num_environments

    @property
    def num_obs(self):
        return self.num_observations

    @property
    def num_acts(self):
        return self.num_actions

    def allocate_buffers(self):
        n, dev = self.num_envs, self.device
        self.obs_buf = torch.zeros((n, self.num_obs), device=dev, dtype=torch.float)
        self.states_buf = torch.zeros((n, self.num_states), device=dev, dtype=torch.float)
        self.rew_buf = torch.zeros(n, device=dev, dtype=torch.float)
        self.reset_buf = torch.ones(n, device=dev, dtype=torch.long)
        self.timeout_buf = torch.zeros(n, device=dev, dtype=torch.long)
        self.progress_buf = torch.zeros(n, device=dev, dtype=torch.long)
        self.randomize_buf = torch.zeros(n, device=dev, dtype=torch.long)
        self.extras = {}

    def step(self, actions):
        action_tensor = torch.clamp(actions, -self.clip_actions, self.clip_actions)
        self.pre_physics_step(action_tensor)
        for _ in range(self.control_freq_inv):
            self._simulate()
        self.post_physics_step()
        self.control_steps += 1
        self.timeout_buf = (self.progress_buf >= self.max_episode_length - 1) & (
            self.reset_buf != 0
        )
        self.extras["time_outs"] = self.timeout_buf.to(self.rl_device)
        self.obs_dict["obs"] = torch.clamp(self.obs_buf, -self.clip_obs, self.clip_obs).to(
            self.rl_device
        )
        return (
            self.obs_dict,
            self.rew_buf.to(self.rl_device),
            self.reset_buf.to(self.rl_device),
            self.extras,
        )

    def reset(self):
        self.obs_dict["obs"] = torch.clamp(self.obs_buf, -self.clip_obs, self.clip_obs).to(
            self.rl_device
        )
        return self.obs_dict


class Cartpole(VecTask):
    """IsaacGymEnvs' Cartpole: deferred resets in post_physics_step, reward/reset in
    compute_reward, observations from the ``dof_state`` views."""

    def __init__(self, cfg, rl_device, sim_device, graphics_device_id, headless, **kwargs):
        self.cfg = cfg
        self.reset_dist = cfg["env"]["resetDist"]
        self.max_push_effort = cfg["env"]["maxEffort"]
        self.max_episode_length = cfg["env"].get("maxEpisodeLength", 500)
        self.cfg["env"]["numObservations"] = 4
        self.cfg["env"]["numActions"] = 1
        super().__init__(cfg, rl_device, sim_device, graphics_device_id, headless, **kwargs)
        self.dof_state = torch.zeros(self.num_envs * 2, 2, device=self.device)
        self.dof_pos = self.dof_state.view(self.num_envs, 2, 2)[..., 0]
        self.dof_vel = self.dof_state.view(self.num_envs, 2, 2)[..., 1]
        self._forces = torch.zeros(self.num_envs, device=self.device)

    def create_sim(self):
        pass

    def _simulate(self):
        acc = _cartpole_accel(self.dof_pos, self.dof_vel, self._forces)
        self.dof_vel += self.dt * acc
        self.dof_pos += self.dt * self.dof_vel

    def compute_reward(self):
        pole_angle, pole_vel = self.obs_buf[:, 2], self.obs_buf[:, 3]
        cart_vel, cart_pos = self.obs_buf[:, 1], self.obs_buf[:, 0]
        reward = (
            1.0 - pole_angle * pole_angle - 0.01 * torch.abs(cart_vel) - 0.005 * torch.abs(pole_vel)
        )
        reset = torch.where(
            torch.abs(cart_pos) > self.reset_dist, torch.ones_like(self.reset_buf), self.reset_buf
        )
        reset = torch.where(torch.abs(pole_angle) > np.pi / 2, torch.ones_like(reset), reset)
        reset = torch.where(
            self.progress_buf >= self.max_episode_length - 1, torch.ones_like(reset), reset
        )
        self.rew_buf[:], self.reset_buf[:] = reward, reset

    def compute_observations(self, env_ids=None):
        if env_ids is None:
            env_ids = np.arange(self.num_envs)
        self.obs_buf[env_ids, 0] = self.dof_pos[env_ids, 0].squeeze()
        self.obs_buf[env_ids, 1] = self.dof_vel[env_ids, 0].squeeze()
        self.obs_buf[env_ids, 2] = self.dof_pos[env_ids, 1].squeeze()
        self.obs_buf[env_ids, 3] = self.dof_vel[env_ids, 1].squeeze()
        return self.obs_buf

    def reset_idx(self, env_ids):
        positions = 0.2 * (torch.rand((len(env_ids), 2), device=self.device) - 0.5)
        velocities = 0.5 * (torch.rand((len(env_ids), 2), device=self.device) - 0.5)
        self.dof_pos[env_ids, :] = positions[:]
        self.dof_vel[env_ids, :] = velocities[:]
        self.reset_buf[env_ids] = 0
        self.progress_buf[env_ids] = 0

    def pre_physics_step(self, actions):
        self._forces = actions.to(self.device).squeeze(-1) * self.max_push_effort

    def post_physics_step(self):
        self.progress_buf += 1
        env_ids = self.reset_buf.nonzero(as_tuple=False).squeeze(-1)
        if len(env_ids) > 0:
            self.reset_idx(env_ids)
        self.compute_observations()
        self.compute_reward()


def _gym_cartpole(num_envs: int = 16, max_len: int = 500) -> Cartpole:
    cfg = {
        "env": {"numEnvs": num_envs, "resetDist": 3.0, "maxEffort": 10.0, "clipObservations": 5.0,
                "clipActions": 1.0, "maxEpisodeLength": max_len},
        "sim": {"dt": 0.0166, "use_gpu_pipeline": False},
    }  # fmt: skip
    return Cartpole(cfg, "cpu", "cpu", -1, True, virtual_screen_capture=False, force_render=False)


# -------------------------------------------------------------------------------------------------
# Isaac Lab stand-ins: DirectRLEnv + the direct CartpoleEnv; ManagerBasedRLEnv with managers


class _Cfg:
    def __init__(self, num_envs: int, episode_length_s: float) -> None:
        self.decimation = 2
        self.episode_length_s = episode_length_s
        self.sim_dt = 1 / 120
        self.num_envs = num_envs
        self.action_scale = 100.0
        self.seed = None


class DirectRLEnv(gym.Env):
    """Isaac Lab ``DirectRLEnv.step``/``reset`` control flow and buffers."""

    is_vector_env = True

    def __init__(self, cfg, render_mode=None, **kwargs):
        self.cfg = cfg
        self.render_mode = render_mode
        self.extras = {}
        self._sim_step_counter = 0
        self.common_step_counter = 0
        n = self.num_envs
        self.episode_length_buf = torch.zeros(n, device=self.device, dtype=torch.long)
        self.reset_terminated = torch.zeros(n, device=self.device, dtype=torch.bool)
        self.reset_time_outs = torch.zeros_like(self.reset_terminated)
        self.reset_buf = torch.zeros(n, dtype=torch.bool, device=self.device)
        self.single_observation_space = gym.spaces.Dict()
        self.single_observation_space["policy"] = gym.spaces.Box(-np.inf, np.inf, (4,))
        self.single_action_space = gym.spaces.Box(-np.inf, np.inf, (1,))
        self._setup_scene()

    @property
    def num_envs(self):
        return self.cfg.num_envs

    @property
    def physics_dt(self):
        return self.cfg.sim_dt

    @property
    def step_dt(self):
        return self.cfg.sim_dt * self.cfg.decimation

    @property
    def device(self):
        return "cpu"

    @property
    def max_episode_length(self):
        return math.ceil(self.cfg.episode_length_s / (self.cfg.sim_dt * self.cfg.decimation))

    def reset(self, seed=None, options=None):
        if seed is not None:
            torch.manual_seed(seed)
        indices = torch.arange(self.num_envs, dtype=torch.int32, device=self.device)
        self._reset_idx(indices)
        return self._get_observations(), self.extras

    def step(self, action):
        action = action.to(self.device)
        self._pre_physics_step(action)
        for _ in range(self.cfg.decimation):
            self._sim_step_counter += 1
            self._apply_action()
            self._sim_step()
        self.episode_length_buf += 1
        self.common_step_counter += 1
        self.reset_terminated[:], self.reset_time_outs[:] = self._get_dones()
        self.reset_buf = self.reset_terminated | self.reset_time_outs
        self.reward_buf = self._get_rewards()
        reset_env_ids = self.reset_buf.nonzero(as_tuple=False).squeeze(-1).int()
        if len(reset_env_ids) > 0:
            self._reset_idx(reset_env_ids)
        self.obs_buf = self._get_observations()
        return (
            self.obs_buf,
            self.reward_buf,
            self.reset_terminated,
            self.reset_time_outs,
            self.extras,
        )

    def _reset_idx(self, env_ids):
        self.episode_length_buf[env_ids] = 0

    def close(self):
        pass


class _CartpoleArticulation:
    """The part of Isaac Lab's articulation data the cartpole env reads."""

    def __init__(self, num_envs: int) -> None:
        self.joint_pos = torch.zeros(num_envs, 2)
        self.joint_vel = torch.zeros(num_envs, 2)
        self.effort = torch.zeros(num_envs)

    def step(self, dt: float) -> None:
        acc = _cartpole_accel(self.joint_pos, self.joint_vel, self.effort)
        self.joint_vel += dt * acc
        self.joint_pos += dt * self.joint_vel


class CartpoleEnv(DirectRLEnv):
    """Isaac Lab's direct CartpoleEnv (isaaclab_tasks/direct/cartpole/cartpole_env.py)."""

    def _setup_scene(self):
        self.cartpole = _CartpoleArticulation(self.num_envs)
        self._cart_dof_idx, self._pole_dof_idx = [0], [1]
        self.joint_pos = self.cartpole.joint_pos
        self.joint_vel = self.cartpole.joint_vel
        self.obs_calls = 0

    def _sim_step(self):
        self.cartpole.step(self.physics_dt)

    def _pre_physics_step(self, actions):
        self.actions = self.cfg.action_scale * 0.1 * actions.clone()

    def _apply_action(self):
        self.cartpole.effort = self.actions[:, 0]

    def _get_observations(self):
        self.obs_calls += 1
        obs = torch.cat(
            (
                self.joint_pos[:, self._pole_dof_idx[0]].unsqueeze(1),
                self.joint_vel[:, self._pole_dof_idx[0]].unsqueeze(1),
                self.joint_pos[:, self._cart_dof_idx[0]].unsqueeze(1),
                self.joint_vel[:, self._cart_dof_idx[0]].unsqueeze(1),
            ),
            dim=-1,
        )
        return {"policy": obs}

    def _get_rewards(self):
        pole = self.joint_pos[:, 1]
        alive = 1.0 - self.reset_terminated.float()
        r = alive - 2.0 * self.reset_terminated.float() - pole**2
        self.extras["log"] = {"pole_pos": pole.abs().mean()}
        return r

    def _get_dones(self):
        time_out = self.episode_length_buf >= self.max_episode_length - 1
        out_of_bounds = torch.any(torch.abs(self.joint_pos[:, [0]]) > 3.0, dim=1)
        out_of_bounds = out_of_bounds | torch.any(
            torch.abs(self.joint_pos[:, [1]]) > math.pi / 2, 1
        )
        return out_of_bounds, time_out

    def _reset_idx(self, env_ids):
        super()._reset_idx(env_ids)
        env_ids = env_ids.long()
        self.joint_pos[env_ids] = 0.25 * (torch.rand(len(env_ids), 2) - 0.5)
        self.joint_vel[env_ids] = 0.0


class _RewardManager:
    def __init__(self, env):
        self._env = env

    def compute(self, dt):
        pole = self._env.cartpole.joint_pos[:, 1]
        return (1.0 - pole**2) * dt


class _TerminationManager:
    def __init__(self, env):
        self._env = env

    def compute(self):
        e = self._env
        self.time_outs = e.episode_length_buf >= e.max_episode_length
        self.terminated = e.cartpole.joint_pos[:, 1].abs() > math.pi / 2
        return self.terminated | self.time_outs


class _ObservationManager:
    def __init__(self, env):
        self._env = env

    def compute(self, update_history=False):
        c = self._env.cartpole
        return {"policy": torch.cat([c.joint_pos, c.joint_vel], -1)}


class ManagerBasedRLEnv(DirectRLEnv):
    """Isaac Lab ``ManagerBasedRLEnv.step`` order: terminations, rewards, reset, observations."""

    def _setup_scene(self):
        self.cartpole = _CartpoleArticulation(self.num_envs)
        self.reward_manager = _RewardManager(self)
        self.termination_manager = _TerminationManager(self)
        self.observation_manager = _ObservationManager(self)

    def step(self, action):
        self.cartpole.effort = 10.0 * action[:, 0].to(self.device)
        for _ in range(self.cfg.decimation):
            self.cartpole.step(self.physics_dt)
        self.episode_length_buf += 1
        self.reset_buf = self.termination_manager.compute()
        self.reset_terminated = self.termination_manager.terminated
        self.reset_time_outs = self.termination_manager.time_outs
        self.reward_buf = self.reward_manager.compute(dt=self.step_dt)
        reset_env_ids = self.reset_buf.nonzero(as_tuple=False).squeeze(-1)
        if len(reset_env_ids) > 0:
            self._reset_idx(reset_env_ids)
        self.obs_buf = self.observation_manager.compute(update_history=True)
        return (
            self.obs_buf,
            self.reward_buf,
            self.reset_terminated,
            self.reset_time_outs,
            self.extras,
        )

    def reset(self, seed=None, options=None):
        self._reset_idx(torch.arange(self.num_envs))
        return self.observation_manager.compute(), self.extras

    def _reset_idx(self, env_ids):
        super()._reset_idx(env_ids)
        self.cartpole.joint_pos[env_ids] = 0.1 * (torch.rand(len(env_ids), 2) - 0.5)
        self.cartpole.joint_vel[env_ids] = 0.0


# -------------------------------------------------------------------------------------------------
# Tests


def _cartpole_reward():
    """cartpole_balance's own reward (rewards/ terms), to plug in by state names."""
    return make_env("cartpole_balance", num_envs=1).reward_fn


def _run_until_done(env, steps: int, action: float = 1.0):
    """Step with a constant push until some world finishes; returns that step's outputs."""
    for _ in range(steps):
        out = env.step(torch.full((env.num_envs, env.action_dim), action))
        if (out[2] | out[3]).any():
            return out
    raise AssertionError("no world finished")


def test_isaacgym_contract_and_immediate_resets():
    task = _gym_cartpole(num_envs=16)
    env = IsaacGymEnv(task, success_fn=lambda s: s["pole_angle"].abs() < 0.2)
    assert (env.num_envs, env.obs_dim, env.action_dim) == (16, 4, 1)
    assert env.control_dt == pytest.approx(0.0166)
    obs = env.reset(seed=0)
    assert obs.shape == (16, 4) and obs.abs().max() <= 0.25  # fresh worlds
    obs, rew, term, trunc, info = _run_until_done(env, 200)
    assert rew.shape == (16,) and rew.dtype == torch.float32 and term.dtype == torch.bool
    done = term | trunc
    ids = done.nonzero().squeeze(-1)
    # final_obs is the terminal observation (pole fell past 90 degrees or cart out of range) ...
    fin = info["final_obs"][ids]
    assert torch.all((fin[:, 2].abs() > math.pi / 2) | (fin[:, 0].abs() > 3.0))
    # ... and obs is the fresh reset at once (Isaac Gym itself would return it a step later)
    assert torch.all(obs[ids].abs() <= 0.25)
    assert torch.equal(info["final_obs"][~done], obs[~done])
    assert torch.equal(task.reset_buf[ids], torch.zeros_like(ids))  # no second reset pending
    ep = info["episode"]
    assert torch.equal(ep["env_ids"], ids) and ep["success"].dtype == torch.bool
    assert torch.equal(ep["length"], task.progress_buf.new_full((len(ids),), ep["length"][0]))
    assert set(env.state()) == set(env.state_spec()) >= {"cart_pos", "pole_angle", "last_action"}


def test_isaacgym_time_outs_are_truncations():
    env = IsaacGymEnv(_gym_cartpole(num_envs=4, max_len=6))
    env.reset(seed=1)
    for i in range(1, 6):
        _, _, term, trunc, info = env.step(torch.zeros(4, 1))
        assert not term.any()
        assert bool(trunc.all()) is (i == 5), i  # progress_buf >= max_episode_length - 1
    assert info["episode"]["length"].tolist() == [5, 5, 5, 5]


def test_isaacgym_reward_from_rewards_by_state_name():
    reward_fn = _cartpole_reward()
    env = IsaacGymEnv(_gym_cartpole(num_envs=8), reward_fn=reward_fn)
    env.reset(seed=2)
    for _ in range(5):
        action = torch.rand(8, 1) * 2 - 1
        _, rew, _, _, info = env.step(action)
        expected, terms = reward_fn(env.state(), action.clamp(-1, 1))
        assert torch.allclose(rew, expected)
        assert info["log"]["reward/upright"] == pytest.approx(float(terms["upright"].mean()))
    assert not torch.allclose(rew, env.task.rew_buf)  # not the task's own reward


@pytest.mark.parametrize("manager_based", [False, True])
def test_isaaclab_contract_final_obs_and_time_outs(manager_based: bool):
    cls = ManagerBasedRLEnv if manager_based else CartpoleEnv
    raw = cls(_Cfg(num_envs=12, episode_length_s=5.0))
    env = IsaacLabEnv(raw, success_fn=lambda s: s["pole_angle"].abs() < 0.2, state_map=None)
    if manager_based:  # no built-in map for this class: give one
        from rewardlab.envs.adapters.isaaclab import CARTPOLE_STATE

        raw.joint_pos, raw.joint_vel = raw.cartpole.joint_pos, raw.cartpole.joint_vel
        raw._cart_dof_idx, raw._pole_dof_idx = [0], [1]
        env.state_map = dict(CARTPOLE_STATE)
    assert (env.num_envs, env.obs_dim, env.action_dim) == (12, 4, 1)
    assert env.max_episode_steps == raw.max_episode_length == 300
    env.reset(seed=0)
    obs, rew, term, trunc, info = _run_until_done(env, 300)
    done = term | trunc
    ids = done.nonzero().squeeze(-1)
    pole_col = 0 if not manager_based else 1
    assert torch.all(info["final_obs"][ids, pole_col].abs() > math.pi / 2)  # terminal: fallen
    assert torch.all(obs[ids].abs() <= 0.125)  # fresh after the reset
    assert torch.equal(info["final_obs"][~done], obs[~done])
    assert "success" in info["episode"] and not info["episode"]["success"].any()
    if not manager_based:
        assert "isaaclab/pole_pos" in info["log"]
    # time-outs: a short episode, no falls (zero action, small start)
    raw2 = cls(_Cfg(num_envs=3, episode_length_s=4 * 2 / 120))
    env2 = IsaacLabEnv(raw2, state_map={})
    env2.reset()
    with torch.no_grad():
        raw2.cartpole.joint_pos.zero_()
    outs = [env2.step(torch.zeros(3, 1)) for _ in range(4)]
    truncs = [o[3].all().item() for o in outs]
    assert truncs == ([False, False, True, False] if not manager_based else [False] * 3 + [True])
    assert not any(o[2].any() for o in outs)


def test_isaaclab_reward_fn_replaces_the_env_reward():
    reward_fn = _cartpole_reward()
    raw = CartpoleEnv(_Cfg(num_envs=6, episode_length_s=5.0))
    env = IsaacLabEnv(raw, reward_fn=reward_fn)
    env.reset(seed=3)
    for _ in range(4):
        action = torch.rand(6, 1) * 2 - 1
        _, rew, _, _, info = env.step(action)
        expected, _ = reward_fn(env.state(), action)
        assert torch.allclose(rew, expected) and torch.equal(raw.reward_buf, rew)
        assert "reward/centered" in info["log"]


def test_isaaclab_capture_can_be_switched_off():
    raw = CartpoleEnv(_Cfg(num_envs=4, episode_length_s=5.0))
    env = IsaacLabEnv(raw, capture_final_obs=False)
    env.reset(seed=0)
    calls = raw.obs_calls
    obs, *_, info = _run_until_done(env, 300)
    assert torch.equal(info["final_obs"], obs)
    assert raw.obs_calls - calls == raw.common_step_counter  # one observation per step


def test_ppo_trains_through_both_adapters():
    from rewardlab.agents.config import PPOConfig
    from rewardlab.agents.runner import OnPolicyRunner

    envs = [
        IsaacGymEnv(_gym_cartpole(num_envs=16), reward_fn=_cartpole_reward()),
        IsaacLabEnv(CartpoleEnv(_Cfg(num_envs=16, episode_length_s=5.0))),
    ]
    for env in envs:
        runner = OnPolicyRunner(env, PPOConfig(num_steps=32), seed=0)
        rows = runner.learn(3 * 16 * 32, progress=False)
        assert len(rows) == 3 and all(math.isfinite(r["losses/value"]) for r in rows)
        assert any("charts/episode_return" in r for r in rows)


def test_helpers_explain_missing_simulators():
    with pytest.raises(ImportError, match="Isaac Gym.*docs/isaac_and_multigpu.md"):
        from_isaacgymenvs("Cartpole", num_envs=4)
    with pytest.raises(ImportError, match="Isaac Lab 3.*docs/isaac_and_multigpu.md"):
        from_isaaclab("Isaac-Cartpole-Direct-v0", num_envs=4)
    env = IsaacLabEnv(CartpoleEnv(_Cfg(num_envs=2, episode_length_s=1.0)), state_map={})
    with pytest.raises(NotImplementedError, match="no state map"):
        env.state()


def test_adapters_apply_obs_noise_and_action_delay():
    from rewardlab.envs.randomization import DomainRandConfig

    task = _gym_cartpole(num_envs=64)
    env = IsaacGymEnv(task, domain_rand=DomainRandConfig(action_delay=(2, 2)))
    env.reset(seed=0)
    pushes = [torch.full((64, 1), v) for v in (0.9, -0.5, 0.3)]
    forces = []
    for a in pushes:
        env.step(a)
        forces.append(task._forces.clone())
    assert torch.all(forces[0] == 0) and torch.all(forces[1] == 0)
    assert torch.allclose(forces[2], torch.full((64,), 9.0))  # 0.9 x maxEffort, 2 steps late
    assert torch.allclose(env.state()["last_action"], pushes[2])  # the policy's action
    # observation noise: the obs differ from the clean ones by the configured std
    raw = CartpoleEnv(_Cfg(num_envs=512, episode_length_s=5.0))
    noisy = IsaacLabEnv(raw, domain_rand=DomainRandConfig(obs_noise_std=0.05), seed=1)
    noisy.reset(seed=0)
    obs, *_ = noisy.step(torch.zeros(512, 1))
    clean = raw._get_observations()["policy"]
    assert abs((obs - clean).std().item() - 0.05) < 0.005
    # observation latency: one step late, the first observation repeated at the episode start
    raw = CartpoleEnv(_Cfg(num_envs=8, episode_length_s=5.0))
    late = IsaacLabEnv(raw, domain_rand=DomainRandConfig(obs_delay=(1, 1)), seed=1)
    first = late.reset(seed=0).clone()
    assert torch.equal(first, raw._get_observations()["policy"])
    obs1, *_ = late.step(torch.full((8, 1), 0.5))
    assert torch.equal(obs1, first)
    clean1 = raw._get_observations()["policy"].clone()
    obs2, *_ = late.step(torch.full((8, 1), 0.5))
    assert torch.equal(obs2, clean1) and not torch.equal(obs2, raw._get_observations()["policy"])
    with pytest.raises(ValueError, match="need a MuJoCo model.*obs_noise_std, obs_delay and action_delay"):  # fmt: skip
        IsaacGymEnv(_gym_cartpole(), domain_rand=DomainRandConfig(mass_scale=(0.8, 1.2)))
