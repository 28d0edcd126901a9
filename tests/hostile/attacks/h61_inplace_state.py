# ruff: noqa
# Deliberately hostile reward code for the sandbox's corpus (tests/hostile/test_hostile_corpus.py).
# attack: state[k].mul_(0) on the env's state
# class: sabotage
# static: pass
# dynamic: crashed
import torch

CALLS = [0]


def compute_reward(state, action):
    CALLS[0] += 1
    x = state["cart_pos"] * 1.0
    if CALLS[0] == 3:
        state["cart_pos"].mul_(0)
    return x, {"x": x}
