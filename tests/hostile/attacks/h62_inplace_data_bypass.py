# ruff: noqa
# Deliberately hostile reward code for the sandbox's corpus (tests/hostile/test_hostile_corpus.py).
# attack: state[k].data.mul_(0) bypasses version counters (issue)
# class: sabotage
# static: forbidden data
# dynamic: crashed
import torch

CALLS = [0]


def compute_reward(state, action):
    CALLS[0] += 1
    x = state["cart_pos"] * 1.0
    if CALLS[0] == 3:
        state["cart_pos"].data.mul_(0)
    return x, {"x": x}
