"""SIGReg, the variance term, the Euclidean contrastive loss and their sum, against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ragcun.losses import EuclideanContrastiveLoss, GaussianEmbeddingLoss, SIGReg, VarianceLoss, sigreg_statistic


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_sigreg_null_expectation_matches_the_closed_form():
    # E[N |phi_N(t) - phi(t)|^2] = 1 - exp(-t^2) for N(0,1) data; integrate with w(t) = exp(-t^2/2) on [-3, 3].
    t = np.linspace(-3, 3, 200001)
    closed = np.trapezoid(np.exp(-(t**2) / 2) * (1 - np.exp(-(t**2))), t)
    assert SIGReg().null_expectation() == pytest.approx(closed, rel=2e-3)
    assert closed == pytest.approx(1.0525, abs=1e-3)


def test_sigreg_near_its_null_value_for_standard_normal_samples():
    x = torch.randn(2048, 64, generator=_gen(0))
    value = float(SIGReg(num_slices=256)(x, generator=_gen(1)))
    assert value == pytest.approx(SIGReg().null_expectation(), abs=0.25)


def test_sigreg_large_when_all_variance_is_in_one_dimension():
    n, d = 2048, 64
    x = torch.zeros(n, d)
    x[:, 0] = torch.randn(n, generator=_gen(0)) * math.sqrt(d)  # same total variance as N(0, I_d)
    isotropic = float(SIGReg(num_slices=256)(torch.randn(n, d, generator=_gen(2)), generator=_gen(1)))
    anisotropic = float(SIGReg(num_slices=256)(x, generator=_gen(1)))
    assert anisotropic > 100 * isotropic
    assert anisotropic > 200


def test_sigreg_of_a_point_mass_by_hand():
    # All samples at 0: phi_N(t) = 1, so err(t) = (1 - phi(t))^2 and T = N * sum_i w_i phi_i (1 - phi_i)^2.
    n = 10
    t = np.linspace(0, 3, 17)
    dt = 3 / 16
    w = np.full(17, 2 * dt)
    w[[0, -1]] = dt
    phi = np.exp(-(t**2) / 2)
    expected = n * float((w * phi * (1 - phi) ** 2).sum())
    assert float(SIGReg(num_slices=8)(torch.zeros(n, 5))) == pytest.approx(expected, rel=1e-5)


def test_sigreg_directions_are_fresh_each_call_and_reproducible_with_a_seed():
    x = torch.randn(256, 16, generator=_gen(0)) * torch.linspace(0.1, 3, 16)  # anisotropic
    module = SIGReg(num_slices=16)
    assert float(module(x)) != float(module(x))
    assert float(module(x, generator=_gen(5))) == float(module(x, generator=_gen(5)))


def test_sigreg_tests_leading_groups_separately():
    good = torch.randn(1024, 8, generator=_gen(0))
    bad = good * 4
    module = SIGReg(num_slices=64)
    both = float(module(torch.stack([good, bad]), generator=_gen(3)))
    each = (float(module(good, generator=_gen(3))) + float(module(bad, generator=_gen(3)))) / 2
    assert both == pytest.approx(each, rel=1e-5)


def test_minimising_sigreg_whitens_an_anisotropic_cloud():
    data = torch.randn(256, 4, generator=_gen(0)) * torch.tensor([6.0, 2.0, 0.5, 0.1]) + 2.0
    linear = torch.nn.Linear(4, 4)
    torch.nn.init.eye_(linear.weight)
    torch.nn.init.zeros_(linear.bias)
    module = SIGReg(num_slices=32)
    optimizer = torch.optim.Adam(linear.parameters(), lr=0.02)
    before = sigreg_statistic(linear(data).detach(), num_slices=256)
    torch.manual_seed(0)
    for _ in range(100):
        optimizer.zero_grad()
        module(linear(data)).backward()
        optimizer.step()
    out = linear(data).detach()
    after = sigreg_statistic(out, num_slices=256)
    assert before > 100
    assert after < before / 10
    assert out.mean(0).abs().max() < 0.2
    assert float(out.std(0).min()) > 0.5 and float(out.std(0).max()) < 1.6  # stds were 0.1 .. 6


def test_variance_term_near_zero_for_standard_normal_and_by_hand_for_one_dimension():
    loss = VarianceLoss()
    assert float(loss(torch.randn(8192, 16, generator=_gen(0)))) < 1e-3
    n, d = 4, 4
    x = torch.zeros(n, d)
    x[:, 0] = torch.tensor([2.0, -2.0, 2.0, -2.0])  # unbiased variance 16/3
    std0 = math.sqrt(16 / 3 + 1e-4)
    std_rest = math.sqrt(1e-4)
    expected = ((std0 - 1) ** 2 + 3 * (std_rest - 1) ** 2) / 4
    assert float(loss(x)) == pytest.approx(expected, rel=1e-5)


def _by_hand_distances():
    q = torch.tensor([[0.0, 0.0], [10.0, 0.0]])
    p = torch.tensor([[3.0, 4.0], [10.0, 1.0]])
    n = torch.tensor([[0.0, 1.0], [16.0, 8.0]])
    return q, p, n


def test_contrastive_margin_infonce_by_hand():
    q, p, n = _by_hand_distances()
    # query 0: d_pos = 5; negatives: p1 at sqrt(101), n0 at 1, n1 at sqrt(320)
    # query 1: d_pos = 1; negatives: p0 at sqrt(65), n0 at sqrt(101), n1 at 10
    margin, tau = 1.0, 2.0
    per_query = [
        tau * math.log(1 + sum(math.exp((5 - d + margin) / tau) for d in (math.sqrt(101), 1.0, math.sqrt(320)))),
        tau * math.log(1 + sum(math.exp((1 - d + margin) / tau) for d in (math.sqrt(65), math.sqrt(101), 10.0))),
    ]
    loss = EuclideanContrastiveLoss(margin=margin, temperature=tau)(q, p, n)
    assert float(loss) == pytest.approx(sum(per_query) / 2, rel=1e-5)


def test_contrastive_hinge_is_the_zero_temperature_limit():
    q, p, n = _by_hand_distances()
    # hardest negatives: query 0 -> n0 at 1 (hinge 5 - 1 + 1 = 5); query 1 -> p0 at sqrt(65) (hinge 0)
    hinge = EuclideanContrastiveLoss(margin=1.0, temperature=0.0)(q, p, n)
    assert float(hinge) == pytest.approx(2.5, rel=1e-6)
    soft = EuclideanContrastiveLoss(margin=1.0, temperature=0.01)(q, p, n)
    assert float(soft) == pytest.approx(2.5, abs=1e-3)


def test_contrastive_excluded_candidates_do_not_count():
    q, p, n = _by_hand_distances()
    exclude = torch.zeros(2, 4, dtype=torch.bool)
    exclude[0, 2] = True  # n0 is a positive of query 0 too
    loss = EuclideanContrastiveLoss(margin=1.0, temperature=1.0)(q, p, n, exclude)
    per_query = [
        math.log(1 + sum(math.exp(5 - d + 1) for d in (math.sqrt(101), math.sqrt(320)))),
        math.log(1 + sum(math.exp(1 - d + 1) for d in (math.sqrt(65), math.sqrt(101), 10.0))),
    ]
    assert float(loss) == pytest.approx(sum(per_query) / 2, rel=1e-5)


def test_total_is_the_weighted_sum_and_parts_are_reported():
    q = torch.randn(16, 8, generator=_gen(0))
    p = q + 0.1 * torch.randn(16, 8, generator=_gen(1))
    n = torch.randn(16, 8, generator=_gen(2))
    contrastive = EuclideanContrastiveLoss(margin=0.5, temperature=1.0)
    sigreg = SIGReg(num_slices=32)
    variance = VarianceLoss()
    total = GaussianEmbeddingLoss(contrastive, sigreg, variance, lambda_isotropy=2.0, lambda_reg=0.5)
    parts = total(q, p, n, generator=_gen(7))
    groups = torch.stack([q, p, n])
    expected = (
        float(contrastive(q, p, n)) + 2.0 * float(sigreg(groups, generator=_gen(7))) + 0.5 * float(variance(groups))
    )
    assert float(parts.total) == pytest.approx(expected, rel=1e-5)
    assert parts.pos_distance == pytest.approx(float((q - p).norm(dim=1).mean()), rel=1e-5)
    assert parts.neg_distance > 3 * parts.pos_distance
    assert set(parts.as_dict()) == {
        "loss",
        "contrastive",
        "sigreg",
        "variance",
        "pos_distance",
        "neg_distance",
        "embedding_std",
    }
