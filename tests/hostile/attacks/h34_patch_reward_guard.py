# ruff: noqa
# Deliberately hostile reward code for the sandbox's corpus (tests/hostile/test_hostile_corpus.py).
# attack: disable the in-sandbox guard, then return NaN
# class: sabotage
# static: forbidden 'sys'
# dynamic: nan
import torch

CALLS = [0]


def compute_reward(state, action):
    CALLS[0] += 1
    x = state["cart_pos"] * 1.0
    if CALLS[0] == 3:
        import sys

        for m in list(sys.modules.values()):
            if getattr(m, "__name__", "").startswith("rewardlab"):
                for k in dir(m):
                    if "check" in k or "validate" in k:
                        setattr(m, k, lambda *a, **kw: None)
        x = x * float("nan")
    return x, {"x": x}
