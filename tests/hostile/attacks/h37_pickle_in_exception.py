# ruff: noqa
# Deliberately hostile reward code for the sandbox's corpus (tests/hostile/test_hostile_corpus.py).
# attack: raise an exception carrying a pickle payload
# class: pickle
# static: forbidden import of 'os'
# dynamic: exception
import torch

CALLS = [0]


def compute_reward(state, action):
    CALLS[0] += 1
    x = state["cart_pos"] * 1.0
    if CALLS[0] == 1:

        class P(Exception):
            def __reduce__(self):
                import os

                return (os.system, ("touch /tmp/rewardlab-pwned-pk2",))

        raise P("payload")
    return x, {"x": x}
