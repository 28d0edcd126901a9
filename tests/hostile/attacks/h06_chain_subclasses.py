# ruff: noqa
# Deliberately hostile reward code for the sandbox's corpus (tests/hostile/test_hostile_corpus.py).
# attack: object.__subclasses__() walk to os._wrap_close
# class: escape
# static: forbidden __
# dynamic: contained exception
import torch

CALLS = [0]


def compute_reward(state, action):
    CALLS[0] += 1
    x = state["cart_pos"] * 1.0
    if CALLS[0] == 1:
        for c in ().__class__.__bases__[0].__subclasses__():
            if c.__name__ == "_wrap_close":
                c.__init__.__globals__["system"]("touch /tmp/rewardlab-pwned-chain6")
    return x, {"x": x}
