# ruff: noqa
# Deliberately hostile reward code for the sandbox's corpus (tests/hostile/test_hostile_corpus.py).
# attack: f-string reading torch.os.environ
# class: leak
# static: forbidden torch.os
# dynamic: contained exception
import torch

CALLS = [0]


def compute_reward(state, action):
    CALLS[0] += 1
    x = state["cart_pos"] * 1.0
    if CALLS[0] == 1:
        raise RuntimeError(f"{torch.os.environ}")
    return x, {"x": x}
