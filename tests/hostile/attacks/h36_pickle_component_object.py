# ruff: noqa
# Deliberately hostile reward code for the sandbox's corpus (tests/hostile/test_hostile_corpus.py).
# attack: return an object with __reduce__ as a component
# class: pickle
# static: forbidden import of 'os'
# dynamic: shape exception
import torch

CALLS = [0]


def compute_reward(state, action):
    CALLS[0] += 1
    x = state["cart_pos"] * 1.0
    if CALLS[0] == 1:

        class P:
            def __reduce__(self):
                import os

                return (os.system, ("touch /tmp/rewardlab-pwned-pk1",))

        return x, {"x": P()}
    return x, {"x": x}
