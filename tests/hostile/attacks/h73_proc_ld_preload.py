# ruff: noqa
# Deliberately hostile reward code for the sandbox's corpus (tests/hostile/test_hostile_corpus.py).
# attack: LD_PRELOAD then exec
# class: privilege
# static: forbidden 'os'
# dynamic: exception
import torch
import os

CALLS = [0]


def compute_reward(state, action):
    CALLS[0] += 1
    x = state["cart_pos"] * 1.0
    if CALLS[0] == 1:
        os.environ["LD_PRELOAD"] = "/tmp/x.so"
        os.execv("/bin/true", ["true"])
    return x, {"x": x}
