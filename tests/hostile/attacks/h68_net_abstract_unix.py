# ruff: noqa
# Deliberately hostile reward code for the sandbox's corpus (tests/hostile/test_hostile_corpus.py).
# attack: an abstract unix socket the trainer listens on
# class: network
# static: forbidden 'socket'
# dynamic: exception
import torch

CALLS = [0]


def compute_reward(state, action):
    CALLS[0] += 1
    x = state["cart_pos"] * 1.0
    if CALLS[0] == 1:
        import socket

        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect("\0rewardlab-hostile-corpus")
    return x, {"x": x}
