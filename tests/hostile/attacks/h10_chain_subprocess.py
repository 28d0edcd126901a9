# ruff: noqa
# Deliberately hostile reward code for the sandbox's corpus (tests/hostile/test_hostile_corpus.py).
# attack: subprocess.run a shell
# class: escape
# static: forbidden 'subprocess'
# dynamic: exception
import torch

CALLS = [0]


def compute_reward(state, action):
    CALLS[0] += 1
    x = state["cart_pos"] * 1.0
    if CALLS[0] == 1:
        import subprocess

        subprocess.run(["sh", "-c", "touch /tmp/rewardlab-pwned-chain10"], check=True)
    return x, {"x": x}
