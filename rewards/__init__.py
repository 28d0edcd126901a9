"""Rewards as code: the reward contract and weighted term composition."""

from rewardlab.rewards.terms import RewardFn, RewardTerm, action_l2, action_rate_l2, alive, compose

__all__ = ["RewardFn", "RewardTerm", "action_l2", "action_rate_l2", "alive", "compose"]
