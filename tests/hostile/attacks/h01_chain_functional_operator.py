# ruff: noqa
# Deliberately hostile reward code for the sandbox's corpus (tests/hostile/test_hostile_corpus.py).
# attack: operator.attrgetter('os.system') through torch.functional (issue)
# class: escape
# static: forbidden torch.functional
# dynamic: contained exception
import torch

CALLS = [0]


def compute_reward(state, action):
    CALLS[0] += 1
    x = state["cart_pos"] * 1.0
    if CALLS[0] == 40:
        torch.functional.operator.attrgetter("os.system")(torch)("id > /tmp/rewardlab-pwned-chain1")
    return x, {"x": x}
