# ruff: noqa
# Deliberately hostile reward code for the sandbox's corpus (tests/hostile/test_hostile_corpus.py).
# attack: allocate and touch 8 GiB after 20 calls (issue: 5 GiB after 40)
# class: resources
# static: pass
# dynamic: memory
import torch

CALLS = [0]


def compute_reward(state, action):
    CALLS[0] += 1
    x = state["cart_pos"] * 1.0
    if CALLS[0] == 20:
        y = torch.ones(2 * 1024 * 1024 * 1024)
    return x, {"x": x}
