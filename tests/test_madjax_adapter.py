"""madjax adapter: a hand-written package in madjax's layout (tests/data/madjax_eemumu) wrapped as a
Process reproduces sbihep's own e⁺e⁻ → μ⁺μ⁻ |M|² and EFT decomposition."""

import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("jax")

from sbihep.errors import InvalidInputError  # noqa: E402
from sbihep.physics.couplings import DEFAULT_SM as SM  # noqa: E402
from sbihep.physics.madjax import MadjaxProcess, require_jax  # noqa: E402
from sbihep.physics.processes import EEToMuMu  # noqa: E402
from sbihep.physics.processes.base import EFTDecomposition  # noqa: E402
from sbihep.physics.xsec import cross_section  # noqa: E402

torch.set_num_threads(1)
PACKAGE = Path(__file__).parent / "data" / "madjax_eemumu"
OPERATORS = {"cll": ("eecontact", 1), "cle": ("eecontact", 2), "cee": ("eecontact", 3)}
INPUTS = {("sminputs", 2): SM.G_F, ("mass", 23): SM.m_Z, ("mass", 24): SM.m_W, ("decay", 23): SM.width_Z}


@pytest.fixture(scope="module")
def adapter():
    return MadjaxProcess(PACKAGE, OPERATORS, parameters=INPUTS, particles=("e-", "e+", "mu-", "mu+"))


@pytest.fixture(scope="module")
def momenta(adapter):
    r = torch.rand(64, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    p, _ = adapter.phase_space(r, torch.linspace(15.0, 3000.0, 64, dtype=torch.float64))  # across the Z pole
    return p


def test_adapter_reproduces_sbihep_matrix_element(adapter, momenta):
    ref = EEToMuMu()
    adapter.check_momenta(momenta)
    for theta in (None, {"cll": 0.3, "cle": -1.2, "cee": 2.0}, {"cee": -4.0}):
        ours, theirs = adapter.matrix_element2(momenta, theta), ref.matrix_element2(momenta, theta)
        assert ours.dtype == torch.float64
        assert ((ours - theirs).abs() / theirs.abs()).max() < 1e-6
    mine, exact = adapter.eft_decomposition(momenta).packed(), ref.eft_decomposition(momenta).packed()
    assert ((mine - exact).abs() / exact.abs().amax(1, keepdim=True)).max() < 1e-6
    linear = adapter.eft_decomposition(momenta, order="linear")
    assert linear.quadratic is None and torch.allclose(linear.linear, ref.eft_decomposition(momenta, "linear").linear, rtol=1e-6)


def test_effective_amplitudes_reproduce_the_polynomial(adapter, momenta):
    amps = adapter.amplitudes(momenta)
    assert amps.components.shape == (4, 64, 4, 1)
    gram = EFTDecomposition.from_gram(amps.gram(), adapter.operators, "quadratic").packed()
    exact = EEToMuMu().eft_decomposition(momenta).packed()
    assert ((gram - exact).abs() / exact.abs().amax(1, keepdim=True)).max() < 1e-6


def test_cross_section_through_the_process_protocol(adapter):
    ours = cross_section(adapter, 250.0, n_evaluations=2000, n_adapt=2, n_iterations=2, seed=1, progress=False)
    theirs = cross_section(EEToMuMu(), 250.0, n_evaluations=2000, n_adapt=2, n_iterations=2, seed=1, progress=False)
    for theta in ({}, {"cle": 1.0}):
        assert ours(theta)[0] == pytest.approx(theirs(theta)[0], rel=1e-6)


def test_bad_packages_and_parameters_are_rejected(tmp_path):
    with pytest.raises(InvalidInputError, match="not in the package"):
        MadjaxProcess(PACKAGE, OPERATORS, process="e+e-_to_tau+tau-")
    with pytest.raises(InvalidInputError, match="not a madjax output package"):
        MadjaxProcess(tmp_path, OPERATORS)
    with pytest.raises(InvalidInputError, match=r"\(block, entry\)"):
        MadjaxProcess(PACKAGE, {"cll": "eecontact"})
    # the model cannot be evaluated with m_Z = 0 (its value at θ = 0): a clear error, not a ZeroDivisionError
    with pytest.raises(InvalidInputError, match="rejected the external parameters"):
        MadjaxProcess(PACKAGE, {"mz": ("mass", 23)})
    # |M|² is not quadratic in the Z width: the decomposition check catches a wrong binding
    wrong = MadjaxProcess(PACKAGE, {"wz": ("decay", 23)}, parameters={("mass", 23): SM.m_Z}, step=2.0)
    p, _ = wrong.phase_space(torch.full((3, 2), 0.3, dtype=torch.float64), 91.0)
    with pytest.raises(InvalidInputError, match="not quadratic"):
        wrong.eft_decomposition(p)


def test_missing_jax_gives_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "jax", None)
    with pytest.raises(ImportError, match=r"sbihep\[madjax\]"):
        require_jax()


def test_adapter_reports_its_precision(adapter, momenta):
    """issue 19: the adapter claimed float64 while madjax's wavefunctions force complex64; it now records
    what the |M|² was computed in."""
    adapter.matrix_element2(momenta[:4])
    assert adapter.precision == "complex128"


def test_real_madjax_wavefunctions_run_in_complex128():
    """With real madjax installed (github.com/madjax-hep/madjax; the PyPI 'madjax' 0.0.1 is an empty
    placeholder), its spinors and polarisation vectors come out complex128 inside the adapter's evaluation
    (madjax_patch.complex forces complex64 otherwise) and agree with the complex64 ones to single precision."""
    wavefunctions = pytest.importorskip("madjax.wavefunctions", reason="real madjax (not the PyPI placeholder) is not installed")
    import jax
    import jax.numpy as jnp

    from sbihep.physics.madjax import _madjax_complex128

    try:  # recent madjax takes its own vector type
        from madjax.phasespace.vectors import _Vector as wrap
    except ImportError:  # pragma: no cover - older layouts take arrays
        def wrap(v):
            return v

    p = [125.0, 30.0, -40.0, 111.8033988749895]
    with jax.enable_x64(True):
        single = [jnp.asarray(c) for c in wavefunctions.oxxxxx(wrap(jnp.asarray(p)), 0.0, 1, 1)[2:]]
        with _madjax_complex128(()):
            double = [jnp.asarray(c) for c in wavefunctions.oxxxxx(wrap(jnp.asarray(p)), 0.0, 1, 1)[2:]]
            vector = [jnp.asarray(c) for c in wavefunctions.vxxxxx(wrap(jnp.asarray(p)), 91.0, 1, 1)[2:]]
    assert all(c.dtype == jnp.complex128 for c in double + vector)
    assert any(c.dtype == jnp.complex64 for c in single)
    for a, b in zip(single, double):
        assert abs(complex(a.ravel()[0]) - complex(b.ravel()[0])) <= 1e-6 * max(1.0, abs(complex(b.ravel()[0])))
    assert wavefunctions.complex is not _madjax_complex128  # restored afterwards
