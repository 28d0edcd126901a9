"""Potential-based shaping of VLM scores: telescoping, termination vs truncation, auto-reset."""

from __future__ import annotations

import pytest
import torch

from rewardlab.vlm_reward.shaping import (
    PotentialShaping,
    ScoreNormalizer,
    ScoreReward,
    mix_rewards,
    potential_shaping,
)

pytestmark = pytest.mark.unit


def test_hand_computed_episode_telescopes():
    # One world, Phi = 0.1, 0.4, 0.3, 0.9 then truncation at s_3; gamma = 0.5.
    sh = PotentialShaping(1, gamma=0.5)
    sh.reset(torch.tensor([0.1]))
    f = torch.tensor([False])
    r1 = sh.step(torch.tensor([0.4]), f, f)  # 0.5*0.4 - 0.1 = 0.1
    r2 = sh.step(torch.tensor([0.3]), f, f)  # 0.5*0.3 - 0.4 = -0.25
    r3 = sh.step(torch.tensor([0.9]), f, torch.tensor([True]), torch.tensor([0.2]))
    # truncated: keeps Phi(s_T): 0.5*0.9 - 0.3 = 0.15
    assert torch.allclose(torch.cat([r1, r2, r3]), torch.tensor([0.1, -0.25, 0.15]))
    # discounted sum = gamma^T Phi(s_T) - Phi(s_0) = 0.125*0.9 - 0.1 = 0.0125
    disc = r1 + 0.5 * r2 + 0.25 * r3
    assert torch.allclose(disc, torch.tensor([0.0125]))
    # the next episode starts from phi_reset = 0.2, not from 0.9
    r4 = sh.step(torch.tensor([0.6]), f, f)
    assert torch.allclose(r4, torch.tensor([0.5 * 0.6 - 0.2]))


def test_true_termination_uses_zero_potential():
    sh = PotentialShaping(2, gamma=0.9)
    sh.reset(torch.tensor([0.5, 0.5]))
    r = sh.step(
        torch.tensor([0.8, 0.8]),
        terminated=torch.tensor([True, False]),
        truncated=torch.tensor([False, True]),
        phi_reset=torch.tensor([0.1, 0.2]),
    )
    # terminated: 0.9*0 - 0.5; truncated: 0.9*0.8 - 0.5
    assert torch.allclose(r, torch.tensor([-0.5, 0.22]))


@pytest.mark.parametrize("gamma", [1.0, 0.97])
def test_telescoping_over_many_worlds_with_auto_reset(gamma):
    """Random potentials, random episode ends: every episode's discounted sum of shaped rewards
    equals gamma^T Phi(s_T) - Phi(s_0) (Phi(s_T) = 0 on termination)."""
    g = torch.Generator().manual_seed(0)
    n, steps = 6, 200
    sh = PotentialShaping(n, gamma=gamma)
    phi0 = torch.rand(n, generator=g)
    sh.reset(phi0)
    start = phi0.clone()
    acc = torch.zeros(n, dtype=torch.float64)
    t = torch.zeros(n, dtype=torch.long)
    checked = 0
    for _ in range(steps):
        phi_next = torch.rand(n, generator=g)
        u = torch.rand(n, generator=g)
        term, trunc = u < 0.05, (u >= 0.05) & (u < 0.1)
        phi_reset = torch.rand(n, generator=g)
        r = sh.step(phi_next, term, trunc, phi_reset)
        acc += (gamma ** t.double()) * r.double()
        t += 1
        for i in torch.nonzero(term | trunc).flatten().tolist():
            end = 0.0 if term[i] else float(phi_next[i])
            expected = gamma ** int(t[i]) * end - float(start[i])
            assert acc[i].item() == pytest.approx(expected, abs=1e-5)
            checked += 1
            acc[i], t[i], start[i] = 0.0, 0, phi_reset[i]
    assert checked > 20


def test_without_phi_reset_the_next_episode_starts_from_post_reset_frame():
    sh = PotentialShaping(2, gamma=0.5)
    sh.reset(torch.tensor([0.4, 0.4]))
    # world 0 terminated, world 1 truncated; phi_next rows are the NEW episodes' first states.
    r = sh.step(torch.tensor([0.7, 0.7]), torch.tensor([True, False]), torch.tensor([False, True]))
    # terminated: -Phi(s_{T-1}); truncated: Phi(s_T) estimated by Phi(s_{T-1}): 0.5*0.4 - 0.4
    assert torch.allclose(r, torch.tensor([-0.4, -0.2]))
    r = sh.step(torch.tensor([0.8, 0.8]), torch.zeros(2, dtype=bool), torch.zeros(2, dtype=bool))
    assert torch.allclose(r, torch.tensor([0.5 * 0.8 - 0.7] * 2))


def test_stateless_potential_shaping():
    r = potential_shaping(
        torch.tensor([0.2, 0.2]), torch.tensor([0.6, 0.6]), 0.5, torch.tensor([False, True])
    )
    assert torch.allclose(r, torch.tensor([0.1, -0.2]))


def test_partial_reset_and_errors():
    sh = PotentialShaping(3, gamma=1.0)
    with pytest.raises(RuntimeError, match="before reset"):
        sh.step(torch.zeros(3), torch.zeros(3, dtype=bool), torch.zeros(3, dtype=bool))
    with pytest.raises(RuntimeError, match="for all worlds"):
        sh.reset(torch.zeros(1), torch.tensor([1]))
    sh.reset(torch.tensor([1.0, 2.0, 3.0]))
    sh.reset(torch.tensor([5.0]), torch.tensor([1]))
    r = sh.step(torch.zeros(3), torch.zeros(3, dtype=bool), torch.zeros(3, dtype=bool))
    assert torch.allclose(r, torch.tensor([-1.0, -5.0, -3.0]))
    with pytest.raises(ValueError, match=r"phi_next: got shape \(2,\), expected \(3,\)"):
        sh.step(torch.zeros(2), torch.zeros(3, dtype=bool), torch.zeros(3, dtype=bool))
    with pytest.raises(ValueError, match="gamma"):
        PotentialShaping(3, gamma=1.5)


def test_normalizer_running_and_minmax():
    x = torch.tensor([1.0, 2.0, 3.0, 4.0])
    run = ScoreNormalizer("running")
    run.update(x[:1])
    run.update(x[1:])  # batched updates equal one pass
    assert run.mean == pytest.approx(2.5)
    assert run.std == pytest.approx(torch.tensor([1.0, 2.0, 3.0, 4.0]).std(unbiased=False).item())
    assert torch.allclose(run(torch.tensor([2.5])), torch.tensor([0.0]))
    sd = ScoreNormalizer("std")
    sd.update(x)
    assert torch.allclose(sd(torch.tensor([2.5])), torch.tensor([2.5 / run.std]))
    mm = ScoreNormalizer("minmax")
    mm.update(x)
    assert torch.allclose(mm(torch.tensor([1.0, 2.5, 4.0])), torch.tensor([0.0, 0.5, 1.0]))
    frozen = ScoreNormalizer("minmax", freeze_after=2)
    frozen.update(torch.tensor([0.0, 1.0]))
    frozen.update(torch.tensor([10.0]))  # ignored: frozen
    assert frozen.max == 1.0
    with pytest.raises(ValueError, match="normalize: got 'zscore'"):
        ScoreNormalizer("zscore")


def test_score_reward_shaping_and_components():
    sr = ScoreReward(2, shaping=True, gamma=1.0, scale=2.0, name="vlm")
    sr.reset(torch.tensor([0.1, 0.5]))
    f = torch.zeros(2, dtype=bool)
    r, comps = sr.step(torch.tensor([0.3, 0.5]), f, f)
    assert torch.allclose(r, torch.tensor([0.4, 0.0]))
    assert set(comps) == {"vlm", "vlm_score"}
    plain = ScoreReward(2, shaping=False, scale=2.0)
    plain.reset(torch.zeros(2))
    r, _ = plain.step(torch.tensor([0.3, 0.5]), f, f)
    assert torch.allclose(r, torch.tensor([0.6, 1.0]))
    # checkpoints restore the potentials
    sr2 = ScoreReward(2, shaping=True, gamma=1.0, scale=2.0)
    sr2.load_state_dict(sr.state_dict())
    r_a, _ = sr.step(torch.tensor([0.0, 0.0]), f, f)
    r_b, _ = sr2.step(torch.tensor([0.0, 0.0]), f, f)
    assert torch.equal(r_a, r_b)


def test_mix_rewards_weights_and_errors():
    total, comps = mix_rewards(
        {"vlm": torch.tensor([1.0, 2.0]), "upright": torch.tensor([0.5, 0.5])},
        {"vlm": 2.0, "upright": -1.0},
    )
    assert torch.allclose(total, torch.tensor([1.5, 3.5]))
    assert torch.allclose(comps["upright"], torch.tensor([-0.5, -0.5]))
    _, comps = mix_rewards({"a": torch.ones(2), "b": torch.ones(2)}, {"b": 0.0})
    assert list(comps) == ["a"]
    with pytest.raises(ValueError, match="unknown terms"):
        mix_rewards({"a": torch.ones(2)}, {"typo": 1.0})
    with pytest.raises(ValueError, match="differ in shape"):
        mix_rewards({"a": torch.ones(2), "b": torch.ones(3)})
