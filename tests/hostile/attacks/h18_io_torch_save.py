# ruff: noqa
# Deliberately hostile reward code for the sandbox's corpus (tests/hostile/test_hostile_corpus.py).
# attack: torch.save into the repository
# class: files
# static: forbidden torch.save
# dynamic: exception
import torch

CALLS = [0]


def compute_reward(state, action):
    CALLS[0] += 1
    x = state["cart_pos"] * 1.0
    if CALLS[0] == 1:
        torch.save(state, "/work/main/rewardlab-pwned-io2.pt")
    return x, {"x": x}
