"""Properties every registered process must have, whatever its physics."""

import pytest
import torch

from sbihep.physics.processes import PROCESSES, get_process

torch.set_num_threads(1)


def sample_momenta(proc, n=64, seed=3):
    gen = torch.Generator().manual_seed(seed)
    r = torch.rand(n, proc.n_random, generator=gen, dtype=torch.float64)
    sqrt_s = max(3.0 * proc.threshold(), 300.0)
    momenta, weight = proc.phase_space(r, sqrt_s)
    return momenta, weight


@pytest.fixture(params=sorted(PROCESSES))
def process(request):
    return get_process(request.param)


def test_phase_space_gives_valid_momenta(process):
    momenta, weight = sample_momenta(process)
    process.check_momenta(momenta)
    assert torch.isfinite(weight).all() and (weight >= 0).all()


def test_decomposition_reproduces_matrix_element(process):
    momenta, _ = sample_momenta(process)
    gen = torch.Generator().manual_seed(5)
    theta = 2 * torch.rand(len(process.operators), generator=gen, dtype=torch.float64) - 1
    for order in ("linear", "quadratic"):
        dec = process.eft_decomposition(momenta, order=order)
        direct = process.matrix_element2(momenta, theta, order=order)
        assert torch.allclose(dec.evaluate(theta), direct, rtol=1e-11, atol=0)
        packed = dec.packed()
        monomials = [1.0] + theta.tolist()
        if order == "quadratic":
            n = len(theta)
            monomials += [theta[i].item() * theta[j].item() for i in range(n) for j in range(i, n)]
        assert packed.shape[1] == len(dec.monomial_names()) == len(monomials)
        assert torch.allclose(packed @ torch.tensor(monomials, dtype=torch.float64), direct, rtol=1e-11, atol=0)


def test_autograd_gradient_matches_decomposition_and_finite_differences(process):
    momenta, _ = sample_momenta(process, n=16)
    dec = process.eft_decomposition(momenta)
    n = len(process.operators)
    # at the SM point ∂|M|²/∂θ_i = A_i exactly
    theta0 = torch.zeros(n, dtype=torch.float64, requires_grad=True)
    jac = torch.autograd.functional.jacobian(lambda t: process.matrix_element2(momenta, t), theta0)
    assert torch.allclose(jac, dec.linear, rtol=1e-12, atol=1e-12 * dec.linear.abs().max().item())
    # at a generic point: A_i + 2 Σ_j A_ij θ_j, and central finite differences
    theta = torch.linspace(-0.8, 0.6, n, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda t: process.matrix_element2(momenta, t), theta)
    expected = dec.linear + 2 * torch.einsum("nij,j->ni", dec.quadratic, theta)
    assert torch.allclose(jac, expected, rtol=1e-10, atol=1e-12 * expected.abs().max().item())
    h = 1e-3
    for i in range(n):
        step = torch.zeros(n, dtype=torch.float64)
        step[i] = h
        fd = (process.matrix_element2(momenta, theta + step) - process.matrix_element2(momenta, theta - step)) / (2 * h)
        assert torch.allclose(fd, jac[:, i], rtol=1e-6, atol=1e-9 * jac.abs().max().item())


def test_gradient_with_respect_to_momenta_is_finite(process):
    momenta, _ = sample_momenta(process, n=8)
    momenta = momenta.clone().requires_grad_(True)
    value = process.matrix_element2(momenta, None).sum()
    (grad,) = torch.autograd.grad(value, momenta)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_quadratic_terms_are_positive_semidefinite(process):
    momenta, _ = sample_momenta(process)
    dec = process.eft_decomposition(momenta)
    eigenvalues = torch.linalg.eigvalsh(dec.quadratic)
    assert (eigenvalues >= -1e-10 * eigenvalues.abs().amax(-1, keepdim=True)).all()
    assert (dec.constant > 0).all()
