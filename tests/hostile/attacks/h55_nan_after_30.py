# ruff: noqa
# Deliberately hostile reward code for the sandbox's corpus (tests/hostile/test_hostile_corpus.py).
# attack: NaN after 30 calls
# class: output
# static: pass
# dynamic: nan
import torch

CALLS = [0]


def compute_reward(state, action):
    CALLS[0] += 1
    x = state["cart_pos"] * 1.0
    if CALLS[0] == 30:
        x = x * float("nan")
    return x, {"x": x}
