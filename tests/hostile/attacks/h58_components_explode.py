# ruff: noqa
# Deliberately hostile reward code for the sandbox's corpus (tests/hostile/test_hostile_corpus.py).
# attack: 10,000 components
# class: output
# static: pass
# dynamic: shape
import torch

CALLS = [0]


def compute_reward(state, action):
    CALLS[0] += 1
    x = state["cart_pos"] * 1.0
    if CALLS[0] == 3:
        return x, {f"c{i}": x for i in range(10000)}
    return x, {"x": x}
