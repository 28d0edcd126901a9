# ruff: noqa
# Deliberately hostile reward code for the sandbox's corpus (tests/hostile/test_hostile_corpus.py).
# attack: torch.nn.modules.container.operator reaches os
# class: escape
# static: forbidden torch.nn.modules
# dynamic: contained exception
import torch

CALLS = [0]


def compute_reward(state, action):
    CALLS[0] += 1
    x = state["cart_pos"] * 1.0
    if CALLS[0] == 1:
        torch.nn.modules.container.operator.attrgetter("os.system")(torch)(
            "touch /tmp/rewardlab-pwned-chain2"
        )
    return x, {"x": x}
