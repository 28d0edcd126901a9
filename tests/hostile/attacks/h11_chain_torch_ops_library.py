# ruff: noqa
# Deliberately hostile reward code for the sandbox's corpus (tests/hostile/test_hostile_corpus.py).
# attack: torch.ops.load_library of a planted .so
# class: escape
# static: forbidden torch.ops
# dynamic: exception
import torch

CALLS = [0]


def compute_reward(state, action):
    CALLS[0] += 1
    x = state["cart_pos"] * 1.0
    if CALLS[0] == 1:
        torch.ops.load_library("/tmp/rewardlab-pwned.so")
    return x, {"x": x}
