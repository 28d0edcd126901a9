# ruff: noqa
# Deliberately hostile reward code for the sandbox's corpus (tests/hostile/test_hostile_corpus.py).
# attack: a template built at run time then .format(torch)
# class: leak
# static: forbidden '.format' on anything but
# dynamic: contained exception
import torch

CALLS = [0]


def compute_reward(state, action):
    CALLS[0] += 1
    x = state["cart_pos"] * 1.0
    if CALLS[0] == 1:
        t = "{" + "0.os.environ}"
        raise RuntimeError(t.format(torch))
    return x, {"x": x}
