# ruff: noqa
# Deliberately hostile reward code for the sandbox's corpus (tests/hostile/test_hostile_corpus.py).
# attack: torch.add(..., out=action)
# class: sabotage
# static: forbidden out=
# dynamic: crashed exception
import torch

CALLS = [0]


def compute_reward(state, action):
    CALLS[0] += 1
    x = state["cart_pos"] * 1.0
    if CALLS[0] == 3:
        torch.add(action, 1.0, out=action)
    return x, {"x": x}
