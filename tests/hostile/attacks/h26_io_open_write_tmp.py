# ruff: noqa
# Deliberately hostile reward code for the sandbox's corpus (tests/hostile/test_hostile_corpus.py).
# attack: open() for writing in the host's /tmp
# class: files
# static: forbidden 'open'
# dynamic: contained
import torch

CALLS = [0]


def compute_reward(state, action):
    CALLS[0] += 1
    x = state["cart_pos"] * 1.0
    if CALLS[0] == 1:
        open("/tmp/rewardlab-pwned-io10", "w").write("x")
    return x, {"x": x}
