# ruff: noqa
# Deliberately hostile reward code for the sandbox's corpus (tests/hostile/test_hostile_corpus.py).
# attack: os.system after 40 calls, past any trial run (issue)
# class: escape
# static: forbidden 'os'
# dynamic: contained exception
import torch
import os

CALLS = [0]


def compute_reward(state, action):
    CALLS[0] += 1
    x = state["cart_pos"] * 1.0
    if CALLS[0] == 40:
        r = os.system("id > /tmp/rewardlab-pwned-d1")
        open("/tmp/rewardlab-pwned-d1b", "w").write(str(r))
    return x, {"x": x}
