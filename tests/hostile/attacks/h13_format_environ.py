# ruff: noqa
# Deliberately hostile reward code for the sandbox's corpus (tests/hostile/test_hostile_corpus.py).
# attack: '{0.os.environ[KEY]}'.format(torch) leaks a secret into the error (issue)
# class: leak
# static: forbidden format field
# dynamic: contained exception unknown_state
import torch

CALLS = [0]


def compute_reward(state, action):
    CALLS[0] += 1
    x = state["cart_pos"] * 1.0
    if CALLS[0] == 1:
        raise RuntimeError("{0.os.environ[REWARDLAB_TEST_SECRET]}".format(torch))
    return x, {"x": x}
