# ruff: noqa
# Deliberately hostile reward code for the sandbox's corpus (tests/hostile/test_hostile_corpus.py).
# attack: torch.autograd.profiler_legacy writes a trace file (issue)
# class: files
# static: forbidden attribute
# dynamic: contained exception
import torch

CALLS = [0]


def compute_reward(state, action):
    CALLS[0] += 1
    x = state["cart_pos"] * 1.0
    if CALLS[0] == 1:
        with torch.autograd.profiler_legacy.profile() as p:
            torch.ones(3) + 1
        p.export_chrome_trace("/tmp/rewardlab-pwned-io6.json")
    return x, {"x": x}
