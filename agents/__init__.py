"""Agents: batched PPO (algorithm, storage, networks, runner), stable-baselines3, evaluation and
policy export, behind one :class:`~rewardlab.agents.policy.Policy` protocol and found by name in
:data:`rewardlab.agents.registry.AGENTS`.

Nothing is imported here: ``rewardlab.agents.config`` and ``.registry`` are read when the command
line is parsed, without torch.
"""
