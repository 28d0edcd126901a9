# ruff: noqa
# Deliberately hostile reward code for the sandbox's corpus (tests/hostile/test_hostile_corpus.py).
# attack: torch.from_file maps /etc/shadow
# class: leak
# static: forbidden from_file
# dynamic: exception
import torch

CALLS = [0]


def compute_reward(state, action):
    CALLS[0] += 1
    x = state["cart_pos"] * 1.0
    if CALLS[0] == 1:
        raise RuntimeError(str(torch.from_file("/etc/shadow", size=64, dtype=torch.uint8)))
    return x, {"x": x}
