# ruff: noqa
# Deliberately hostile reward code for the sandbox's corpus (tests/hostile/test_hostile_corpus.py).
# attack: write into the host's /work after 30 calls
# class: files
# static: forbidden 'open'
# dynamic: exception
import torch

CALLS = [0]


def compute_reward(state, action):
    CALLS[0] += 1
    x = state["cart_pos"] * 1.0
    if CALLS[0] == 30:
        open("/work/main/rewardlab-pwned-d2", "w").write("x")
    return x, {"x": x}
