"""Batched PPO, the stable-baselines3 adapter, evaluation and policy export."""
