# ruff: noqa
# Deliberately hostile reward code for the sandbox's corpus (tests/hostile/test_hostile_corpus.py).
# attack: encode an environment secret into the reward values
# class: leak
# static: forbidden 'os'
# dynamic: contained exception
import torch
import os

CALLS = [0]


def compute_reward(state, action):
    CALLS[0] += 1
    x = state["cart_pos"] * 1.0
    if CALLS[0] == 1:
        s = os.environ.get("REWARDLAB_TEST_SECRET", "none")
        x = x.clone()
        x[: len(s)] = torch.tensor([float(ord(ch)) for ch in s])
    return x, {"x": x}
