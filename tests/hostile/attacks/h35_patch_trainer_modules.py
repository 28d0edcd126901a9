# ruff: noqa
# Deliberately hostile reward code for the sandbox's corpus (tests/hostile/test_hostile_corpus.py).
# attack: import the trainer and patch its PPO update
# class: sabotage
# static: forbidden rewardlab.agents.ppo
# dynamic: contained exception
import torch

CALLS = [0]


def compute_reward(state, action):
    CALLS[0] += 1
    x = state["cart_pos"] * 1.0
    if CALLS[0] == 2:
        import rewardlab.agents.ppo as ppo

        ppo.PPO.update = lambda *a, **k: {}
    return x, {"x": x}
