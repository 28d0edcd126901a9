"""Agent configs: frozen dataclasses with a docstring per field, validated at load."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class PPOConfig:
    """Batched PPO (rsl_rl-style) hyper-parameters."""

    num_steps: int = 32
    """Control steps collected per world before each update (rollout length)."""
    num_epochs: int = 5
    """Passes over the rollout per update."""
    num_minibatches: int = 4
    """Minibatches per epoch; minibatch size = num_envs * num_steps / num_minibatches."""
    gamma: float = 0.99
    """Discount factor."""
    lam: float = 0.95
    """GAE lambda."""
    clip_ratio: float = 0.2
    """PPO clipping of the probability ratio."""
    clip_value: bool = False
    """Clip the value update around the old value estimate by ``clip_ratio`` (rsl_rl's default is
    on; off here because the clip is absolute, so it stalls the critic when returns are large)."""
    value_coef: float = 1.0
    """Weight of the value loss."""
    entropy_coef: float = 0.0
    """Weight of the entropy bonus."""
    learning_rate: float = 1e-3
    """Initial Adam learning rate."""
    schedule: str = "adaptive"
    """``adaptive`` (before each minibatch step the rate is divided by 1.5 when the KL so far is
    over twice ``desired_kl * steps done / steps planned``, multiplied by 1.5 under half of it),
    ``linear`` (anneal to 0) or ``fixed``."""
    desired_kl: float = 0.01
    """KL (nats, mean over samples) one update should move the policy by: the target of the
    adaptive schedule and the unit of ``kl_stop_ratio``."""
    desired_kl_final: float = 0.0
    """When > 0, ``desired_kl`` is annealed linearly to this value between the training fractions
    ``kl_anneal_start`` and 1: large policy steps early for sample efficiency, small ones late so
    that the final policy holds. 0: constant ``desired_kl``."""
    kl_anneal_start: float = 0.0
    """Training fraction in ``[0, 1)`` where the anneal to ``desired_kl_final`` begins (before it
    the bound is ``desired_kl``)."""
    kl_stop_ratio: float = 2.0
    """End an update early (skip its remaining minibatches and epochs) once the KL between the
    current and the rollout policy exceeds ``kl_stop_ratio * desired_kl``, for every schedule
    (SB3's ``target_kl`` stops at 1.5x). 0 disables the stop."""
    min_learning_rate: float = 1e-5
    """Lower bound of the adaptive schedule's learning rate."""
    max_learning_rate: float = 3e-3
    """Upper bound of the adaptive schedule's learning rate (rsl_rl: 1e-2)."""
    max_grad_norm: float = 1.0
    """Global gradient-norm clip."""
    actor_hidden: tuple[int, ...] = (64, 64)
    """Hidden layer sizes of the policy MLP."""
    critic_hidden: tuple[int, ...] = (64, 64)
    """Hidden layer sizes of the value MLP."""
    activation: str = "elu"
    """Hidden activation: ``elu``, ``tanh`` or ``relu``."""
    init_noise_std: float = 1.0
    """Initial standard deviation of the Gaussian policy (state-independent, learned)."""
    normalize_obs: bool = True
    """Running mean/std observation normalization (exported with the policy). The std is floored
    at 0.1, so that nearly constant features (cos of an angle kept near 0) are not amplified."""
    normalize_rewards: bool = True
    """Divide rewards by the running std of the discounted return, so that learning does not
    depend on the reward's scale (useful for generated rewards); rewards are not centered."""
    normalize_advantages: bool = True
    """Normalize advantages per minibatch."""

    def validate(self) -> None:
        """Raise ``ValueError`` naming the field and the allowed values."""
        floats = ("gamma", "lam", "clip_ratio", "value_coef", "entropy_coef", "learning_rate",
                  "desired_kl", "desired_kl_final", "kl_anneal_start", "kl_stop_ratio", "min_learning_rate", "max_learning_rate",
                  "max_grad_norm", "init_noise_std")  # fmt: skip
        for name in floats:
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value)):
                raise ValueError(f"ppo.{name}: got {value!r}, expected a finite number")
        checks = [
            ("num_steps", self.num_steps >= 1, ">= 1"),
            ("num_epochs", self.num_epochs >= 1, ">= 1"),
            ("num_minibatches", self.num_minibatches >= 1, ">= 1"),
            ("gamma", 0.0 <= self.gamma <= 1.0, "in [0, 1]"),
            ("lam", 0.0 <= self.lam <= 1.0, "in [0, 1]"),
            ("clip_ratio", self.clip_ratio > 0.0, "> 0"),
            ("learning_rate", self.learning_rate > 0.0, "> 0"),
            ("schedule", self.schedule in ("adaptive", "linear", "fixed"), "one of adaptive, linear, fixed"),
            ("desired_kl", self.desired_kl > 0.0, "> 0"),
            ("desired_kl_final", self.desired_kl_final >= 0.0, ">= 0 (0: constant desired_kl)"),
            ("kl_anneal_start", 0.0 <= self.kl_anneal_start < 1.0, "in [0, 1)"),
            ("kl_stop_ratio", self.kl_stop_ratio == 0.0 or self.kl_stop_ratio >= 1.0, "0 (off) or >= 1"),
            ("min_learning_rate", self.min_learning_rate > 0.0, "> 0"),
            ("max_learning_rate", self.max_learning_rate >= self.min_learning_rate, ">= min_learning_rate"),
            ("max_grad_norm", self.max_grad_norm > 0.0, "> 0"),
            ("value_coef", self.value_coef >= 0.0, ">= 0"),
            ("entropy_coef", self.entropy_coef >= 0.0, ">= 0"),
            ("actor_hidden", all(int(h) >= 1 for h in self.actor_hidden), "widths >= 1"),
            ("critic_hidden", all(int(h) >= 1 for h in self.critic_hidden), "widths >= 1"),
            ("activation", self.activation in ("elu", "tanh", "relu"), "one of elu, tanh, relu"),
            ("init_noise_std", self.init_noise_std > 0.0, "> 0"),
        ]  # fmt: skip
        for name, ok, allowed in checks:
            if not ok:
                raise ValueError(f"ppo.{name}: got {getattr(self, name)!r}, expected {allowed}")

    def kl_target(self, progress: float) -> float:
        """The KL bound of an update at training fraction ``progress`` in ``[0, 1]``
        (``desired_kl``, annealed to ``desired_kl_final`` when that is set)."""
        if self.desired_kl_final <= 0.0:
            return self.desired_kl
        start = self.kl_anneal_start
        p = min(max((progress - start) / (1.0 - start), 0.0), 1.0)
        return self.desired_kl + p * (self.desired_kl_final - self.desired_kl)


@dataclass(frozen=True)
class SACConfig:
    """Batched soft actor-critic hyper-parameters (``agent=sac``), for many parallel worlds.

    One learner iteration steps every world ``num_steps`` times, storing the transitions in the
    replay buffer, then runs the ``num_steps * updates_per_step`` gradient updates due (a
    fraction carries over): critic, then actor and temperature every ``policy_delay``-th
    update, then the Polyak target update.
    """

    num_steps: int = 4
    """Control steps of every world per learner iteration (what ``checkpoint_every`` counts)."""
    updates_per_step: float = 1.0
    """Gradient updates per step of all worlds (the update-to-data ratio is
    ``updates_per_step * batch_size / num_envs`` sampled transitions per collected one)."""
    batch_size: int = 512
    """Transitions per gradient update, drawn uniformly from the replay buffer."""
    buffer_size: int = 1_000_000
    """Replay capacity in transitions summed over worlds (``buffer_size // num_envs`` steps per
    world; the oldest are overwritten). It lives on the learner device; ``latest.pt`` holds it
    for an exact resume (numbered checkpoints hold the learner only)."""
    learning_starts: int = 5_000
    """Env steps (summed over worlds) of uniform random actions before updates begin."""
    gamma: float = 0.99
    """Discount factor."""
    tau: float = 0.005
    """Polyak rate of the target critics: ``target = (1 - tau) * target + tau * critic``."""
    n_step: int = 1
    """Steps of the return before bootstrapping (1: plain SAC); an episode end cuts it short."""
    actor_learning_rate: float = 1e-3
    """Adam learning rate of the actor."""
    critic_learning_rate: float = 1e-3
    """Adam learning rate of the twin critics."""
    alpha_learning_rate: float = 1e-3
    """Adam learning rate of the log-temperature (automatic entropy tuning)."""
    init_alpha: float = 0.01
    """Initial entropy temperature (small: batched runs make few updates per env step, so a
    temperature starting at SB3's 1.0 takes long to fall and drowns small rewards)."""
    autotune_alpha: bool = True
    """Tune the temperature so that the policy's entropy tracks ``target_entropy``; false keeps
    ``init_alpha``."""
    target_entropy: float | None = None
    """Entropy target (nats) of the temperature tuning; null: ``-action_dim``."""
    policy_delay: int = 1
    """Update the actor and the temperature every this many critic updates."""
    max_grad_norm: float = 0.0
    """Global gradient-norm clip of each network; 0: no clip."""
    actor_hidden: tuple[int, ...] = (256, 256)
    """Hidden layer sizes of the actor MLP."""
    critic_hidden: tuple[int, ...] = (256, 256)
    """Hidden layer sizes of each critic MLP."""
    activation: str = "relu"
    """Hidden activation: ``elu``, ``tanh`` or ``relu``."""
    normalize_obs: bool = True
    """Running mean/std observation normalization (updated from collected observations,
    exported with the policy; the std is floored at 0.1 as PPO's)."""
    reward_scale: float = 1.0
    """Multiplier of rewards before they are stored."""

    def validate(self) -> None:
        """Raise ``ValueError`` naming the field and the allowed values."""
        floats = ("updates_per_step", "gamma", "tau", "actor_learning_rate",
                  "critic_learning_rate", "alpha_learning_rate", "init_alpha", "max_grad_norm",
                  "reward_scale")  # fmt: skip
        for name in floats:
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value)):
                raise ValueError(f"sac.{name}: got {value!r}, expected a finite number")
        te = self.target_entropy
        checks = [
            ("num_steps", self.num_steps >= 1, ">= 1"),
            ("updates_per_step", self.updates_per_step >= 0.0, ">= 0"),
            ("batch_size", self.batch_size >= 1, ">= 1"),
            ("buffer_size", self.buffer_size >= 1, ">= 1"),
            ("learning_starts", self.learning_starts >= 0, ">= 0"),
            ("gamma", 0.0 <= self.gamma <= 1.0, "in [0, 1]"),
            ("tau", 0.0 < self.tau <= 1.0, "in (0, 1]"),
            ("n_step", self.n_step >= 1, ">= 1"),
            ("actor_learning_rate", self.actor_learning_rate > 0.0, "> 0"),
            ("critic_learning_rate", self.critic_learning_rate > 0.0, "> 0"),
            ("alpha_learning_rate", self.alpha_learning_rate > 0.0, "> 0"),
            ("init_alpha", self.init_alpha > 0.0, "> 0"),
            ("target_entropy", te is None or (isinstance(te, int | float) and math.isfinite(te)), "a finite number or null"),
            ("policy_delay", self.policy_delay >= 1, ">= 1"),
            ("max_grad_norm", self.max_grad_norm >= 0.0, ">= 0 (0: no clip)"),
            ("actor_hidden", all(int(h) >= 1 for h in self.actor_hidden), "widths >= 1"),
            ("critic_hidden", all(int(h) >= 1 for h in self.critic_hidden), "widths >= 1"),
            ("activation", self.activation in ("elu", "tanh", "relu"), "one of elu, tanh, relu"),
            ("reward_scale", self.reward_scale > 0.0, "> 0"),
        ]  # fmt: skip
        for name, ok, allowed in checks:
            if not ok:
                raise ValueError(f"sac.{name}: got {getattr(self, name)!r}, expected {allowed}")


@dataclass(frozen=True)
class ResidualSACConfig:
    """Residual off-policy RL (``agent=residual_sac``): SAC learns a correction of a fixed base
    policy: ``action = clip(base(o) + residual_scale * residual(o, base(o)), -1, 1)``."""

    base_policy: str = ""
    """The base policy: an export folder holding ``policy.pt`` (e.g. ``runs/bc/export``) or a
    ``policy.pt`` file (TorchScript, raw observation -> action in ``[-1, 1]``); required by
    ``agent=residual_sac`` (checked when training starts)."""
    residual_scale: float = 0.1
    """Scale of the residual action (the SAC action in ``[-1, 1]``) added to the base action."""
    sparse_reward: bool = False
    """Train on the task's success flag alone (reward 1 on steps where it holds, else 0)
    instead of the env's reward."""
    demos: str = ""
    """Episode file(s) (``rewardlab demos record``; several separated by commas) whose
    transitions are mixed into every update's batch, RLPD-style (Ball et al. 2023); empty: none.
    Needs ``sparse_reward``: a demo transition earns the recorded success of the state it led
    to. Its residual action is the one that reproduces the demonstrated action on the base
    (``(a - base(o)) / residual_scale``, clipped to ``[-1, 1]``; training prints the share
    clipped)."""
    demo_ratio: float = 0.5
    """Share of each batch drawn from ``demos`` (RLPD: 0.5), in ``[0, 1)``."""
    sac: SACConfig = field(default_factory=SACConfig)
    """The residual's SAC settings (its actor sees the observation and the base action; the mean
    of its last layer starts at zero, so training starts from the base policy)."""

    def validate(self) -> None:
        """Raise ``ValueError`` naming the field and the allowed values."""
        scale = self.residual_scale
        if not (isinstance(scale, int | float) and math.isfinite(scale) and scale > 0):
            raise ValueError(f"residual_scale: got {scale!r}, expected a finite number > 0")
        ratio = self.demo_ratio
        if not (isinstance(ratio, int | float) and 0.0 <= ratio < 1.0):
            raise ValueError(f"residual_sac.demo_ratio: got {ratio!r}, expected a number in [0, 1)")
        if self.demo_files() and not self.sparse_reward:
            raise ValueError(
                "residual_sac.demos: needs residual_sac.sparse_reward=true (demonstrations are "
                "labelled with their recorded success, the sparse reward)"
            )
        self.sac.validate()

    def demo_files(self) -> list[str]:
        """The episode files :attr:`demos` names."""
        return [p.strip() for p in self.demos.split(",") if p.strip()]


@dataclass(frozen=True)
class BCConfig:
    """Behaviour cloning (``agent=bc``): an MLP regressed onto demonstrated actions.

    ``total_steps`` counts gradient steps for this agent (not env steps): one learner iteration
    is ``steps_per_iteration`` minibatch updates; the env only runs for the periodic evaluation.
    """

    demos: str = ""
    """Episode file(s) to clone (``rewardlab demos record``): one ``.npz``, or several separated
    by commas (required by ``agent=bc``)."""
    only_success: bool = True
    """Train only on the episodes whose last step is the task's success."""
    batch_size: int = 256
    """Transitions per gradient step, drawn uniformly (with replacement) from the demos."""
    learning_rate: float = 1e-3
    """Adam learning rate (fixed)."""
    weight_decay: float = 0.0
    """Adam(W) weight decay."""
    hidden: tuple[int, ...] = (256, 256)
    """Hidden layer sizes of the policy MLP."""
    activation: str = "elu"
    """Hidden activation: ``elu``, ``tanh`` or ``relu``."""
    normalize_obs: bool = True
    """Normalize observations by the demos' mean/std (std floored at 0.1), exported with the
    policy."""
    ignore_obs: tuple[str, ...] = ("last_action", "prev_action")
    """Observation layout entries (``rewardlab tasks`` lists a task's) that BC does not read:
    their columns are zeroed inside the policy (the export still takes the whole observation).
    The default drops the action history, which a clone can copy instead of reading the state
    (the "copycat" problem; no measurable effect on the scripted demos of
    ``benchmarks/results/bc_demos.md``); names a task's layout lacks are skipped."""
    steps_per_iteration: int = 100
    """Gradient steps per learner iteration (one metrics row; ``checkpoint_every`` counts these
    iterations)."""
    eval_every: int = 10
    """Iterations between evaluations of the task's own success in the training env
    (deterministic actions; ``charts/success_rate``); 0: only at the end."""
    eval_episodes: int = 16
    """Episodes per periodic evaluation (one per world, at most the env's worlds)."""
    keep_best: bool = True
    """The trained (exported, evaluated) policy is the network of the best periodic evaluation
    (highest success; ties: the later one), not the last one: with few demos BC overfits and
    its success falls while the loss still does. The evaluations use their own reset seed
    (``seed + 20000``), not the final evaluation's."""

    def validate(self) -> None:
        """Raise ``ValueError`` naming the field and the allowed values."""
        for name in ("learning_rate", "weight_decay"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value)):
                raise ValueError(f"bc.{name}: got {value!r}, expected a finite number")
        checks = [
            ("batch_size", self.batch_size >= 1, ">= 1"),
            ("learning_rate", self.learning_rate > 0.0, "> 0"),
            ("weight_decay", self.weight_decay >= 0.0, ">= 0"),
            ("hidden", all(int(h) >= 1 for h in self.hidden), "widths >= 1"),
            ("activation", self.activation in ("elu", "tanh", "relu"), "one of elu, tanh, relu"),
            ("steps_per_iteration", self.steps_per_iteration >= 1, ">= 1"),
            ("eval_every", self.eval_every >= 0, ">= 0 (0: only at the end)"),
            ("eval_episodes", self.eval_episodes >= 1, ">= 1"),
        ]  # fmt: skip
        for name, ok, allowed in checks:
            if not ok:
                raise ValueError(f"bc.{name}: got {getattr(self, name)!r}, expected {allowed}")

    def demo_files(self) -> list[str]:
        """The episode files :attr:`demos` names."""
        return [p.strip() for p in self.demos.split(",") if p.strip()]


IQL_REWARDS = ("task", "success", "preference")
"""Values of :attr:`IQLConfig.reward`."""


@dataclass(frozen=True)
class IQLConfig:
    """Implicit Q-Learning (``agent=iql``, Kostrikov et al. 2021): offline RL on recorded episodes.

    ``total_steps`` counts gradient steps for this agent (not env steps), as for ``bc``: one
    learner iteration is ``steps_per_iteration`` updates of the value, the twin Q and the actor;
    the env only runs for the periodic evaluation.
    """

    demos: str = ""
    """Episode file(s) to learn from (``rewardlab demos record``): one ``.npz``, or several
    separated by commas (required by ``agent=iql``). All episodes are used, failures included."""
    reward: str = "task"
    """Reward of each transition: ``task`` (the episodes' recorded ``reward``, the task's own, of
    the state reached), ``success`` (1 where the task's success holds in the state reached,
    else 0: sparse) or ``preference`` (RL-VLM-F: the reward model ``reward_model`` scores each
    step's frame, redrawn from the episode's physics rows or read from its recorded frames)."""
    reward_model: str = ""
    """``reward=preference``: the reward ensemble ``rewardlab vlm-prefs`` trained
    (``OUT/reward.pt``)."""
    discount: float = 0.99
    """Discount factor of the Q target ``r + discount * V(s')``."""
    expectile: float = 0.8
    """Expectile ``tau`` of the value regression onto ``min(Q1, Q2)`` (0.5: the mean; near 1:
    the maximum over the data's actions)."""
    beta: float = 3.0
    """Inverse temperature of the advantage-weighted actor regression: weights
    ``exp(beta * (Q - V))``, clipped at ``max_weight``."""
    max_weight: float = 100.0
    """Upper clip of the actor's advantage weights."""
    polyak: float = 0.005
    """Step of the target Q towards the online Q after every update."""
    batch_size: int = 256
    """Transitions per gradient step, drawn uniformly (with replacement)."""
    learning_rate: float = 1e-3
    """Adam learning rate of the value, Q and actor (fixed; 3e-4, the paper's for 10^6 steps,
    left the actor short of BC's fit in a few thousand steps: benchmarks/results/iql.md)."""
    hidden: tuple[int, ...] = (128, 128)
    """Hidden layer sizes of the actor, the value and each Q."""
    activation: str = "elu"
    """Hidden activation: ``elu``, ``tanh`` or ``relu``."""
    normalize_obs: bool = True
    """Normalize observations by the data's mean/std (std floored at 0.1), exported with the
    policy."""
    ignore_obs: tuple[str, ...] = ("last_action", "prev_action")
    """Observation layout entries neither the actor nor the critics read (zeroed, as
    ``bc.ignore_obs``): a scripted demonstrator's last action equals its next one, so a value that
    reads it knows the action and the advantage ``Q - V`` carries no signal."""
    steps_per_iteration: int = 100
    """Gradient steps per learner iteration (one metrics row; ``checkpoint_every`` counts these
    iterations)."""
    eval_every: int = 10
    """Iterations between evaluations of the task's own success in the training env
    (deterministic actions; ``charts/success_rate``); 0: only at the end."""
    eval_episodes: int = 16
    """Episodes per periodic evaluation (one per world, at most the env's worlds)."""
    keep_best: bool = True
    """The trained (exported, evaluated) policy is the actor of the best periodic evaluation
    (highest success; ties: the later one), not the last one (as ``bc.keep_best``)."""

    def validate(self) -> None:
        """Raise ``ValueError`` naming the field and the allowed values."""
        for name in ("discount", "expectile", "beta", "max_weight", "polyak", "learning_rate"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value)):
                raise ValueError(f"iql.{name}: got {value!r}, expected a finite number")
        checks = [
            ("reward", self.reward in IQL_REWARDS, "one of " + ", ".join(IQL_REWARDS)),
            ("discount", 0.0 <= self.discount < 1.0, "in [0, 1)"),
            ("expectile", 0.0 < self.expectile < 1.0, "in (0, 1)"),
            ("beta", self.beta >= 0.0, ">= 0"),
            ("max_weight", self.max_weight > 0.0, "> 0"),
            ("polyak", 0.0 < self.polyak <= 1.0, "in (0, 1]"),
            ("batch_size", self.batch_size >= 1, ">= 1"),
            ("learning_rate", self.learning_rate > 0.0, "> 0"),
            ("hidden", all(int(h) >= 1 for h in self.hidden), "widths >= 1"),
            ("activation", self.activation in ("elu", "tanh", "relu"), "one of elu, tanh, relu"),
            ("steps_per_iteration", self.steps_per_iteration >= 1, ">= 1"),
            ("eval_every", self.eval_every >= 0, ">= 0 (0: only at the end)"),
            ("eval_episodes", self.eval_episodes >= 1, ">= 1"),
        ]  # fmt: skip
        for name, ok, allowed in checks:
            if not ok:
                raise ValueError(f"iql.{name}: got {getattr(self, name)!r}, expected {allowed}")
        if self.reward == "preference" and not self.reward_model:
            raise ValueError(
                "iql.reward_model: required with iql.reward=preference (the reward.pt of "
                "rewardlab vlm-prefs)"
            )

    def demo_files(self) -> list[str]:
        """The episode files :attr:`demos` names."""
        return [p.strip() for p in self.demos.split(",") if p.strip()]
