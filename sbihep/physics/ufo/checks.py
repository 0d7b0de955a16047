"""Checks of a generated process that need no reference: Lorentz invariance, Ward identities, exact EFT dependence.

Each returns the worst relative deviation it found (a float; 0 is perfect) so that a user — or a test —
can compare it with a tolerance:

* :func:`lorentz_invariance`: |M|² and every EFT coefficient at random momenta against the same after a
  random rotation and boost (double precision gives ~1e-13);
* :func:`ward_identities`: for every external massless vector boson (photon, gluon), the amplitude with
  its polarisation replaced by its momentum, relative to |M| × its energy (gauge invariance of the
  sum of diagrams; ~1e-14 when every diagram of the process is there);
* :func:`eft_exactness`: the EFT polynomial against the process rebuilt from the model with the Wilson
  coefficients set to numbers (no θ components), at θ = h eᵢ and h(eᵢ + eⱼ): an independent route
  through the model's coupling evaluation, exact when the amplitude is linear in θ.

:func:`random_momenta` gives flat phase-space points of a process at a partonic √ŝ.
"""

from __future__ import annotations

import torch

from sbihep.errors import InvalidInputError

__all__ = ["random_momenta", "random_lorentz_transforms", "lorentz_invariance", "ward_identities", "eft_exactness"]


def random_momenta(process, sqrt_s_hat: float, n: int = 8, seed: int = 0) -> torch.Tensor:
    """(n, 2 + m, 4) momenta from the process's own phase space at √ŝ (GeV), seeded."""
    gen = torch.Generator().manual_seed(seed)
    r = torch.rand(n, process.n_random, generator=gen, dtype=torch.float64)
    momenta, _ = process.phase_space(r, float(sqrt_s_hat))
    return momenta


def random_lorentz_transforms(n: int, seed: int = 0, max_rapidity: float = 1.0) -> torch.Tensor:
    """(n, 4, 4) proper orthochronous Lorentz transformations: a random rotation then a random boost
    (rapidity uniform in [0, max_rapidity] along a random direction)."""
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(n, 4, generator=gen, dtype=torch.float64)
    q = q / q.norm(dim=-1, keepdim=True)
    w, x, y, z = q.unbind(-1)
    rot = torch.stack([
        torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
        torch.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
        torch.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
    ], -2)
    direction = torch.randn(n, 3, generator=gen, dtype=torch.float64)
    direction = direction / direction.norm(dim=-1, keepdim=True)
    eta = max_rapidity * torch.rand(n, generator=gen, dtype=torch.float64)
    gamma, bg = torch.cosh(eta), torch.sinh(eta)
    boost = torch.zeros(n, 4, 4, dtype=torch.float64)
    boost[:, 0, 0] = gamma
    boost[:, 0, 1:] = bg[:, None] * direction
    boost[:, 1:, 0] = bg[:, None] * direction
    boost[:, 1:, 1:] = torch.eye(3, dtype=torch.float64) + (gamma - 1)[:, None, None] * direction[:, :, None] * direction[:, None, :]
    full = torch.zeros(n, 4, 4, dtype=torch.float64)
    full[:, 0, 0] = 1.0
    full[:, 1:, 1:] = rot
    return boost @ full


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    """Worst |a − b| per coefficient (column) relative to that coefficient's largest size over the
    events; columns far below the constant (first column) are measured against 1e-12 × its size,
    so that an exactly vanishing coefficient does not turn rounding noise into an O(1) deviation."""
    scale = torch.maximum(a.abs(), b.abs()).amax(0)  # per coefficient, over events
    floor = 1e-12 * float(scale[0]) if scale.numel() else 0.0
    return float(((a - b).abs() / scale.clamp_min(max(floor, 1e-300))).max())


def lorentz_invariance(process, momenta: torch.Tensor, subprocess: str | None = None, seed: int = 0) -> float:
    """Worst relative change of the packed EFT coefficients (constant, linear, quadratic) under random
    rotations and boosts of all momenta, each coefficient relative to its largest size over the events."""
    lam = random_lorentz_transforms(momenta.shape[0], seed)
    moved = torch.einsum("nij,nkj->nki", lam, momenta)
    order = "quadratic" if process.operators else "linear"
    before = process.eft_decomposition(momenta, order, subprocess, validate=False).packed()
    after = process.eft_decomposition(moved, order, subprocess, validate=False).packed()
    return _relative(before, after)


def ward_identities(amplitude, momenta: torch.Tensor) -> dict[int, float]:
    """Leg → max over events of ‖M(ε → k)‖ / (‖M‖ · E_k) for every external massless vector leg of a
    :class:`~sbihep.physics.ufo.amplitude.TreeAmplitude` (norms over components, helicities and
    colour flows).  Empty when the process has no such leg."""
    out: dict[int, float] = {}
    full = amplitude.components(momenta)
    norm = full.abs().pow(2).sum(dim=(0, 2, 3)).sqrt()  # (N,)
    for leg, particle in enumerate(amplitude._particles):
        if particle.spin != 3 or amplitude.masses[leg] != 0.0:
            continue
        gauge = amplitude.components(momenta, gauge_leg=leg)
        g = gauge.abs().pow(2).sum(dim=(0, 2, 3)).sqrt()
        out[leg] = float((g / (norm * momenta[:, leg, 0]).clamp_min(1e-300)).max())
    return out


def eft_exactness(process, text: str, model, momenta: torch.Tensor, *, step: float = 0.5,
                  subprocess: str | None = None, pairs: bool = True, **generate_options) -> float:
    """Worst relative difference between the EFT polynomial of ``process`` (a :class:`GeneratedProcess`
    from ``text`` in ``model``) and |M|² of the same process rebuilt with the Wilson coefficients set
    as numbers, at θ = ±step·eᵢ (and step·(eᵢ + eⱼ) with ``pairs``), relative to the largest |M|² per point.

    ``generate_options`` are passed to :func:`~sbihep.physics.ufo.generated.generate_process` (e.g. ``orders``).
    """
    from sbihep.physics.ufo.generated import generate_process

    ops = list(process.operators)
    if not ops:
        raise InvalidInputError("eft_exactness: the process has no operators")
    points: list[dict[str, float]] = []
    for i, a in enumerate(ops):
        points += [{a: step}, {a: -step}]
        if pairs:
            points += [{a: step, b: step} for b in ops[i + 1:]]
    decomposition = process.eft_decomposition(momenta, "quadratic", subprocess, validate=False)
    worst = 0.0
    for theta in points:
        direct = generate_process(text, model, (), inputs=theta, cache=False, **generate_options)
        value = direct.matrix_element2(momenta, None, "quadratic", subprocess, validate=False)
        poly = decomposition.evaluate(process.theta_vector(theta))
        scale = torch.maximum(value.abs(), poly.abs()).clamp_min(1e-300)
        worst = max(worst, float(((value - poly).abs() / scale).max()))
    return worst

