# ruff: noqa
# Deliberately hostile reward code for the sandbox's corpus (tests/hostile/test_hostile_corpus.py).
# attack: total becomes [N, 1] after 35 calls (issue: after 100)
# class: output
# static: pass
# dynamic: shape
import torch

CALLS = [0]


def compute_reward(state, action):
    CALLS[0] += 1
    x = state["cart_pos"] * 1.0
    if CALLS[0] == 35:
        x = x[:, None]
    return x, {"x": x}
