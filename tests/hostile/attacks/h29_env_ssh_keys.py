# ruff: noqa
# Deliberately hostile reward code for the sandbox's corpus (tests/hostile/test_hostile_corpus.py).
# attack: read ~/.ssh and /root secrets
# class: leak
# static: forbidden 'open'
# dynamic: exception
import torch

CALLS = [0]


def compute_reward(state, action):
    CALLS[0] += 1
    x = state["cart_pos"] * 1.0
    if CALLS[0] == 1:
        raise RuntimeError(open("/root/.ssh/id_rsa").read())
    return x, {"x": x}
