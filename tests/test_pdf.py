"""Tests of sbihep.physics.pdf: the lhagrid1 reader, the log-bicubic interpolation and the luminosity."""

import functools
import gzip
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import sbihep.physics
from sbihep.errors import DataFormatError, InvalidInputError, PDFExtrapolationWarning, ShapeError
from sbihep.physics.couplings import DEFAULT_SM
from sbihep.physics.pdf import (
    DEFAULT_SET_NAME,
    PDF,
    XFXQ_ALL_PIDS,
    parse_lhagrid1,
    parton_luminosity,
    read_lhagrid1,
)

torch.set_num_threads(1)
f64 = functools.partial(torch.tensor, dtype=torch.float64)

SHIPPED_FILE = Path(sbihep.physics.__file__).parent / "data" / f"{DEFAULT_SET_NAME}_0000.dat.gz"
B_THRESHOLD_GEV = 4.92
SLOT = {pid: index for index, pid in enumerate(XFXQ_ALL_PIDS)}  # pid → index of xfxQ_all's last axis


@pytest.fixture(scope="module")
def pdf():
    return PDF.load()


@pytest.fixture(scope="module")
def shipped_text():
    return gzip.decompress(SHIPPED_FILE.read_bytes()).decode()


def independent_subgrids(text):
    """Minimal lhagrid1 reader by plain string splitting: [(x, q, flavours, {(ix, iq): row})]."""
    blocks = text.split("---\n")[1:-1]
    subgrids = []
    for block in blocks:
        lines = [line for line in block.split("\n") if line.strip()]
        x = [float(v) for v in lines[0].split()]
        q = [float(v) for v in lines[1].split()]
        flavours = [int(v) for v in lines[2].split()]
        rows = [[float(v) for v in line.split()] for line in lines[3:]]
        table = {(ix, iq): rows[ix * len(q) + iq] for ix in range(len(x)) for iq in range(len(q))}
        subgrids.append((x, q, flavours, table))
    return subgrids


def knot_nodes_in_log_x(x_knots, nodes_per_interval=8):
    """Composite Gauss–Legendre in ln x, one panel per knot interval: (x, weights for ∫ d ln x)."""
    nodes, weights = np.polynomial.legendre.leggauss(nodes_per_interval)
    lower, upper = np.log(x_knots[:-1])[:, None], np.log(x_knots[1:])[:, None]
    log_x = 0.5 * (upper - lower) * (nodes + 1.0) + lower
    return torch.from_numpy(np.exp(log_x).ravel()), torch.from_numpy((0.5 * (upper - lower) * weights).ravel())


# --- sum rules --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def xf_on_quadrature_nodes(pdf):
    x, weights = knot_nodes_in_log_x(pdf.grid.subgrids[0].x)
    return x, weights, pdf.xfxQ_all(x, f64(100.0))


def test_momentum_sum_rule(xf_on_quadrature_nodes):
    x, weights, xf = xf_on_quadrature_nodes
    momentum = (weights * x * xf.sum(-1)).sum()  # ∫ d ln x · x · Σ x f = ∫ dx Σ x f
    assert momentum.item() == pytest.approx(1.0, rel=0.01)


@pytest.mark.parametrize(("quark", "expected"), [(2, 2.0), (1, 1.0)])
def test_valence_sum_rules(xf_on_quadrature_nodes, quark, expected):
    _, weights, xf = xf_on_quadrature_nodes
    valence = (weights * (xf[:, SLOT[quark]] - xf[:, SLOT[-quark]])).sum()  # ∫ d ln x (x q − x q̄)
    assert valence.item() == pytest.approx(expected, rel=0.01)


# --- interpolation ----------------------------------------------------------------------------


def test_reproduces_every_knot(pdf, shipped_text):
    for x, q, flavours, table in independent_subgrids(shipped_text):
        xf_all = pdf.xfxQ_all(f64(x)[:, None], f64(q)[None, :])
        for column, pid in enumerate(flavours):
            expected = np.array([[table[ix, iq][column] for iq in range(len(q))] for ix in range(len(x))])
            slot = SLOT[0 if pid == 21 else pid]
            np.testing.assert_allclose(xf_all[..., slot].numpy(), expected, rtol=1e-12, atol=0)


def test_single_flavour_paths_reproduce_knots(pdf, shipped_text):
    x, q, flavours, table = independent_subgrids(shipped_text)[1]
    ix = torch.tensor([0, 1, 40, 75, 120, 148, 149])
    iq = torch.tensor([0, 5, 17, 36, 37])
    x_points, q_points = f64(x)[ix][:, None], f64(q)[iq][None, :]
    for column, pid in enumerate(flavours):
        expected = np.array([[table[i, j][column] for j in iq.tolist()] for i in ix.tolist()])
        np.testing.assert_allclose(pdf.xfxQ(pid, x_points, q_points).numpy(), expected, rtol=1e-12, atol=0)
        pids = torch.full((len(ix), len(iq)), pid)
        np.testing.assert_allclose(pdf.xfxQ(pids, x_points, q_points).numpy(), expected, rtol=1e-12, atol=0)


def test_adjacent_subgrids_share_boundary_values(shipped_text):
    (_, q_low, _, low), (_, q_high, _, high) = independent_subgrids(shipped_text)
    assert q_low[-1] == q_high[0] == B_THRESHOLD_GEV
    assert all(low[ix, len(q_low) - 1] == high[ix, 0] for ix in range(150))


def test_linear_function_of_logs_is_reproduced_exactly():
    # Finite-difference slopes are exact for f = a + b ln x + c ln Q + d ln x ln Q, and so is the interpolant.
    x_knots, q_knots = np.geomspace(1e-4, 1.0, 7), np.array([2.0, 3.0, 5.0, 10.0, 40.0])

    def f(x, q):
        return 3.0 + 0.5 * np.log(x) - 0.25 * np.log(q) + 0.1 * np.log(x) * np.log(q)

    text = synthetic_grid_text(x_knots, q_knots, f)
    linear_pdf = PDF(parse_lhagrid1(text), name="linear")
    x = f64([1.3e-4, 2e-3, 0.05, 0.5, 0.99])[:, None]
    q = f64([2.1, 4.0, 7.7, 33.0])[None, :]
    np.testing.assert_allclose(linear_pdf.xfxQ(21, x, q).numpy(), f(x.numpy(), q.numpy()), rtol=1e-12)


def test_values_between_knots_close_to_linear_interpolation(pdf):
    # At the centre of each grid cell (in ln x, ln Q) the interpolant stays within 2% of the
    # mean of the cell's four corners, for the large, smooth gluon and up-quark densities.
    for subgrid in pdf.grid.subgrids:
        x, q = f64(subgrid.x), f64(subgrid.q)
        ix = torch.nonzero((x > 1e-6) & (x < 0.5)).flatten()
        x_mid, q_mid = torch.sqrt(x[ix] * x[ix + 1]), torch.sqrt(q[:-1] * q[1:])
        xf_mid = pdf.xfxQ_all(x_mid[:, None], q_mid[None, :])
        for pid in (21, 2):
            knots = f64(subgrid.xf[:, :, subgrid.flavours.index(pid)])
            corners = knots[ix][:, :-1] + knots[ix + 1][:, :-1] + knots[ix][:, 1:] + knots[ix + 1][:, 1:]
            relative = xf_mid[..., SLOT[0 if pid == 21 else pid]] / (0.25 * corners) - 1.0
            assert relative.abs().max() < 0.02, pid


def test_gluon_and_up_quark_positive_at_moderate_x(pdf):
    x = torch.logspace(-4, math.log10(0.7), 60, dtype=torch.float64)[:, None]
    q = torch.logspace(math.log10(2.0), 4, 40, dtype=torch.float64)[None, :]
    xf = pdf.xfxQ_all(x, q)
    assert (xf[..., SLOT[0]] > 0).all()
    assert (xf[..., SLOT[2]] > 0).all()


def test_continuous_across_b_threshold(pdf):
    x = torch.logspace(-6, math.log10(0.8), 25, dtype=torch.float64)
    below = pdf.xfxQ_all(x, f64(B_THRESHOLD_GEV * (1 - 1e-9)))
    above = pdf.xfxQ_all(x, f64(B_THRESHOLD_GEV * (1 + 1e-9)))
    on = pdf.xfxQ_all(x, f64(B_THRESHOLD_GEV))
    # Across ΔlnQ = 2e-9 a continuous density changes by ~1e-9 × its ln Q slope (≲ a few × x g).
    tolerance = 1e-7 * below[:, SLOT[0], None]
    assert ((above - below).abs() <= tolerance).all()
    assert ((on - below).abs() <= tolerance).all()


def test_frozen_outside_grid(pdf):
    (x_min, _), (q_min, q_max) = pdf.x_range, pdf.q_range
    pdf._warned_below_x_min = False  # the warning comes once per PDF object; this one is shared
    with pytest.warns(PDFExtrapolationWarning, match="x_min"):  # frozen, and said so
        assert torch.equal(pdf.xfxQ_all(1e-12, 100.0), pdf.xfxQ_all(x_min, 100.0))
    assert torch.equal(pdf.xfxQ_all(0.1, 1.0), pdf.xfxQ_all(0.1, q_min))
    assert torch.equal(pdf.xfxQ_all(0.1, 1e7), pdf.xfxQ_all(0.1, q_max))
    x = f64(1e-12, requires_grad=True)
    (gradient,) = torch.autograd.grad(pdf.xfxQ(21, x, 100.0), x)
    assert gradient.item() == 0.0


def test_autograd_matches_finite_differences(pdf):
    x = f64([2e-5, 3e-3, 0.047, 0.31, 0.66])
    q = f64([3.3, 20.0, 91.2, 1234.0, 7.0])
    for pid in (21, 2, -1, 4):
        x_leaf = x.clone().requires_grad_(True)
        (dx_autograd,) = torch.autograd.grad(pdf.xfxQ(pid, x_leaf, q).sum(), x_leaf)
        h = 1e-6 * x
        dx_central = (pdf.xfxQ(pid, x + h, q) - pdf.xfxQ(pid, x - h, q)) / (2 * h)
        np.testing.assert_allclose(dx_autograd.numpy(), dx_central.numpy(), rtol=1e-6)

        q_leaf = q.clone().requires_grad_(True)
        (dq_autograd,) = torch.autograd.grad(pdf.xfxQ(pid, x, q_leaf).sum(), q_leaf)
        h = 1e-6 * q
        dq_central = (pdf.xfxQ(pid, x, q + h) - pdf.xfxQ(pid, x, q - h)) / (2 * h)
        # Central differences are only first-order accurate where the step straddles a Q knot.
        np.testing.assert_allclose(dq_autograd.numpy(), dq_central.numpy(), rtol=1e-5)


def test_xfxQ_all_gradient_agrees_with_single_flavour(pdf):
    x = f64([1e-3, 0.2], requires_grad=True)
    (all_gradient,) = torch.autograd.grad(pdf.xfxQ_all(x, 50.0)[:, SLOT[-2]].sum(), x)
    (one_gradient,) = torch.autograd.grad(pdf.xfxQ(-2, x, 50.0).sum(), x)
    torch.testing.assert_close(all_gradient, one_gradient, rtol=1e-13, atol=0)


# --- flavours, shapes and input errors -------------------------------------------------------


def test_flavour_ids(pdf):
    x, q = f64([1e-3, 0.1, 0.5]), f64(100.0)
    assert torch.equal(pdf.xfxQ(0, x, q), pdf.xfxQ(21, x, q))
    assert torch.equal(pdf.xfxQ(6, x, q), torch.zeros(3, dtype=torch.float64))
    assert torch.equal(pdf.xfxQ(-6, x, q), torch.zeros(3, dtype=torch.float64))
    xf_all = pdf.xfxQ_all(x, q)
    assert xf_all.shape == (3, 13) and xf_all.dtype == torch.float64
    for pid in XFXQ_ALL_PIDS:
        torch.testing.assert_close(xf_all[:, SLOT[pid]], pdf.xfxQ(pid, x, q), rtol=1e-14, atol=1e-300)
    mixed = torch.tensor([[21], [0], [-3], [6]])  # broadcasts against x to (4, 3)
    expected = torch.stack([pdf.xfxQ(int(p), x, q) for p in mixed.flatten()])
    torch.testing.assert_close(pdf.xfxQ(mixed, x, q), expected, rtol=1e-14, atol=0)
    assert pdf.flavours == (-5, -4, -3, -2, -1, 1, 2, 3, 4, 5, 21)
    for bad in (7, 22, -21, 11):
        with pytest.raises(InvalidInputError, match=f"pid {bad}"):
            pdf.xfxQ(bad, x, q)
    with pytest.raises(InvalidInputError, match="pid 22"):
        pdf.xfxQ(torch.tensor([1, 22]), 0.1, 10.0)
    with pytest.raises(ShapeError, match="pid"):
        pdf.xfxQ(torch.tensor([1.0, 2.0]), 0.1, 10.0)


def test_broadcasting_and_properties(pdf):
    assert pdf.xfxQ(2, torch.full((4, 1), 0.1), torch.full((1, 5), 30.0)).shape == (4, 5)
    assert pdf.xfxQ_all(0.1, torch.full((2, 3), 30.0)).shape == (2, 3, 13)
    assert pdf.xfxQ(2, 1.0, 30.0).item() == 0.0  # x = 1 is a knot with zero density
    assert pdf.x_range == (1e-9, 1.0) and pdf.q_range == (1.65, 1e5)
    assert (pdf.name, pdf.member) == (DEFAULT_SET_NAME, 0)
    with pytest.raises(ShapeError, match="broadcast"):
        pdf.xfxQ(2, torch.full((3,), 0.1), torch.full((4,), 30.0))


@pytest.mark.parametrize(
    ("x", "q", "argument"),
    [(0.0, 10.0, "x"), (1.5, 10.0, "x"), (-0.1, 10.0, "x"), (math.nan, 10.0, "x"),
     (0.1, -5.0, "q"), (0.1, 0.0, "q"), (0.1, math.nan, "q"), (0.1, math.inf, "q")],
)  # fmt: skip
def test_invalid_arguments_raise(pdf, x, q, argument):
    with pytest.raises(InvalidInputError, match=rf"\b{argument}\b"):
        pdf.xfxQ(21, f64([0.2, x]), f64([50.0, q]))
    with pytest.raises(InvalidInputError, match=rf"\b{argument}\b"):
        pdf.xfxQ_all(x, q)


def test_alpha_s_of_embedded_set_follows_default_sm(pdf):
    q = f64([2.0, 10.0, 91.1876, 1000.0])
    expected = f64([DEFAULT_SM.alpha_s(v) for v in q.tolist()])
    torch.testing.assert_close(pdf.alpha_s(q), expected, rtol=1e-13, atol=0)
    with pytest.raises(InvalidInputError, match="q"):
        pdf.alpha_s(-1.0)


# --- loading ----------------------------------------------------------------------------------


def test_embedded_grid_is_parsed_once_and_not_at_import(pdf):
    assert PDF.load().grid is pdf.grid
    assert PDF.load(DEFAULT_SET_NAME).grid is pdf.grid
    probe = "import sbihep.physics.pdf as m; print(m._embedded_grid.cache_info().currsize)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "0"


def test_load_from_lhapdf_data_path(pdf, shipped_text, tmp_path, monkeypatch):
    set_dir = tmp_path / "MySet"
    set_dir.mkdir()
    (set_dir / "MySet_0000.dat").write_text(shipped_text)
    (set_dir / "MySet.info").write_text(
        'SetDesc: "a copy for testing"\nFormat: lhagrid1\nAlphaS_MZ: 0.130\nMZ: 91.1876\nAlphaS_OrderQCD: 0\n'
        "Flavors: [-5, -4, -3, -2, -1, 1, 2, 3, 4, 5, 21]\n"
    )
    monkeypatch.setenv("LHAPDF_DATA_PATH", f"{tmp_path / 'missing'}:{tmp_path}")
    loaded = PDF.load("MySet")
    assert (loaded.name, loaded.member, loaded.alpha_s_order_qcd) == ("MySet", 0, 0)
    assert loaded.alpha_s(91.1876).item() == pytest.approx(0.130, rel=1e-14)
    x, q = f64([1e-5, 0.02, 0.4]), f64([3.0, 100.0, 5000.0])
    assert torch.equal(loaded.xfxQ_all(x, q), pdf.xfxQ_all(x, q))
    with pytest.raises(InvalidInputError, match="MySet_0001.dat"):
        PDF.load("MySet", member=1)
    by_path = PDF.load(set_dir / "MySet_0000.dat")
    assert (by_path.name, by_path.alpha_s_mz) == ("MySet", 0.130)


def test_load_plain_and_gzip_paths(pdf, tmp_path):
    copied = tmp_path / "Copy_0003.dat.gz"
    copied.write_bytes(SHIPPED_FILE.read_bytes())
    from_gzip = PDF.load(str(copied))
    assert (from_gzip.name, from_gzip.member, from_gzip.alpha_s_order_qcd) == ("Copy", 3, None)
    assert torch.equal(from_gzip.xfxQ(1, 0.3, 20.0), pdf.xfxQ(1, 0.3, 20.0))
    with pytest.raises(InvalidInputError, match="member"):
        PDF.load(copied, member=5)
    with pytest.raises(InvalidInputError, match="no such file"):
        PDF.load(str(tmp_path / "absent.dat"))


def test_unknown_set_name_lists_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("LHAPDF_DATA_PATH", str(tmp_path))
    with pytest.raises(InvalidInputError, match="NoSuchSet") as caught:
        PDF.load("NoSuchSet")
    assert str(tmp_path) in str(caught.value) and DEFAULT_SET_NAME in str(caught.value)
    monkeypatch.delenv("LHAPDF_DATA_PATH")
    with pytest.raises(InvalidInputError, match="not found"):
        PDF.load("NoSuchSet")
    with pytest.raises(InvalidInputError, match="member"):
        PDF.load(member=1)
    with pytest.raises(InvalidInputError, match="member"):
        PDF.load(member=-1)


# --- malformed files --------------------------------------------------------------------------


def synthetic_grid_text(x_knots, q_knots, function, flavours=(21,)):
    """lhagrid1 text of one subgrid whose every flavour holds function(x, q)."""
    rows = [" ".join(f"{function(x, q):.17e}" for _ in flavours) for x in x_knots for q in q_knots]
    lines = ["PdfType: central", "Format: lhagrid1", "---"]
    lines += [" ".join(f"{v:.17e}" for v in x_knots), " ".join(f"{v:.17e}" for v in q_knots)]
    lines += [" ".join(str(p) for p in flavours), *rows, "---"]
    return "\n".join(lines) + "\n"


@pytest.fixture()
def small_grid_lines():
    text = synthetic_grid_text([1e-3, 0.1, 1.0], [2.0, 5.0, 10.0], lambda x, q: 1.0 - x, flavours=(-1, 21, 1))
    return text.splitlines()


def replace_line(lines, index, new_line):
    return "\n".join(lines[:index] + [new_line] + lines[index + 1 :]) + "\n"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda ls: "\n".join(ls[:-3] + ls[-1:]) + "\n", "expected 3 x knots × 3 Q knots = 9 rows"),
        (lambda ls: replace_line(ls, 8, "0.5 abc 0.5"), "'abc' is not a number"),
        (lambda ls: replace_line(ls, 8, "0.5 0.5"), "expected 3 values"),
        (lambda ls: replace_line(ls, 8, "0.5 nan 0.5"), "non-finite"),
        (lambda ls: replace_line(ls, 3, "1e-3 1e-2 5e-3"), "x knots are not strictly increasing"),
        (lambda ls: replace_line(ls, 4, "2.0 2.0 10.0"), "Q knots are not strictly increasing"),
        (lambda ls: replace_line(ls, 3, "1e-3 0.1 1.5"), r"\(0, 1\]"),
        (lambda ls: replace_line(ls, 5, "-1 21 -1"), "repeated flavour"),
        (lambda ls: replace_line(ls, 5, "-1 g 1"), "integers"),
        (lambda ls: "\n".join(ls[:-1]) + "\n", "not terminated"),
        (lambda ls: "\n".join(ls[:3]) + "\n", "no subgrid"),
        (lambda ls: "Format: lhagrid1\n", "no '---'"),
        (lambda ls: replace_line(ls, 1, "Format: lhagrid2"), "lhagrid2"),
    ],
)
def test_malformed_grid_raises(small_grid_lines, tmp_path, edit, message):
    assert len(parse_lhagrid1("\n".join(small_grid_lines)).subgrids) == 1  # the unedited grid is fine
    path = tmp_path / "Broken_0000.dat"
    path.write_text(edit(small_grid_lines))
    with pytest.raises(DataFormatError, match=message) as caught:
        read_lhagrid1(path)
    assert str(path) in str(caught.value)


def test_truncated_and_corrupted_shipped_file_raise(shipped_text, tmp_path):
    truncated = tmp_path / "Truncated_0000.dat.gz"
    truncated.write_bytes(gzip.compress(shipped_text[: len(shipped_text) // 2].encode()))
    with pytest.raises(DataFormatError, match="Truncated_0000"):
        PDF.load(truncated)
    broken_gzip = tmp_path / "Cut_0000.dat.gz"
    broken_gzip.write_bytes(SHIPPED_FILE.read_bytes()[:50_000])
    with pytest.raises(DataFormatError, match="gzip"):
        PDF.load(broken_gzip)
    lines = shipped_text.splitlines()
    lines[3000] = lines[3000].replace("E", "X", 1)
    corrupted = tmp_path / "Corrupt_0000.dat"
    corrupted.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError, match="line 3001"):
        PDF.load(corrupted)


def test_subgrids_must_share_boundary(small_grid_lines):
    lines = small_grid_lines
    second = list(lines[3:])
    second[1] = "1.1e+01 2.0e+01 3.0e+01"  # starts at 11 GeV, the first ends at 10 GeV
    with pytest.raises(DataFormatError, match="share their boundary"):
        parse_lhagrid1("\n".join(lines + second) + "\n")


# --- parton luminosity ------------------------------------------------------------------------


@pytest.mark.parametrize(("pid_a", "pid_b"), [(21, 21), (2, -1)])
def test_luminosity_matches_fine_grid_integral_at_one_tau(pdf, pid_a, pid_b):
    tau, q = 1e-3, 100.0
    luminosity = parton_luminosity(pdf, pid_a, pid_b, f64(tau), f64(q))
    # ∫_τ^1 dx/x f_a(x) f_b(τ/x) with plain densities f = xf/x, trapezoid rule on 200 001 points in ln x.
    log_x = torch.linspace(math.log(tau), 0.0, 200_001, dtype=torch.float64)
    x = torch.exp(log_x)
    x_b = (tau / x).clamp(max=1.0)
    f_a, f_b = pdf.xfxQ(pid_a, x, q) / x, pdf.xfxQ(pid_b, x_b, q) / x_b
    brute_force = torch.trapezoid(f_a * f_b, log_x)
    assert luminosity.item() == pytest.approx(brute_force.item(), rel=1e-4)


@pytest.mark.parametrize(("pid_a", "pid_b"), [(21, 21), (2, -1)])
def test_luminosity_matches_2d_integral(pdf, pid_a, pid_b):
    # ∫ dτ g(τ) dL/dτ = ∫∫ dx_a dx_b f_a(x_a) f_b(x_b) g(x_a x_b) for g a narrow Gaussian in ln τ.
    tau0, width, q = 1e-3, 0.2, f64(100.0)

    def smearing(log_tau):
        return torch.exp(-0.5 * ((log_tau - math.log(tau0)) / width) ** 2)

    nodes, weights = (torch.from_numpy(a) for a in np.polynomial.legendre.leggauss(64))
    half_range = 8 * width
    log_tau = math.log(tau0) + half_range * nodes
    luminosity = parton_luminosity(pdf, pid_a, pid_b, torch.exp(log_tau), q)
    one_d = (half_range * weights * torch.exp(log_tau) * smearing(log_tau) * luminosity).sum()

    # Brute force on a 2D tensor grid: one Gauss–Legendre panel per x-knot interval on each axis.
    x_knots = pdf.grid.subgrids[0].x
    x_knots = np.concatenate([[tau0 * math.exp(-half_range)], x_knots[x_knots > tau0 * math.exp(-half_range)]])
    x, w = knot_nodes_in_log_x(x_knots)  # ∫ dx f(x) = ∫ d ln x · xf(x)
    xf_a, xf_b = pdf.xfxQ(pid_a, x, q), pdf.xfxQ(pid_b, x, q)
    log_products = torch.log(x)[:, None] + torch.log(x)[None, :]
    two_d = ((w * xf_a)[:, None] * (w * xf_b)[None, :] * smearing(log_products)).sum()
    assert one_d.item() == pytest.approx(two_d.item(), rel=1e-4)


def test_luminosity_batched_and_symmetric(pdf):
    tau = f64([[1e-5, 1e-3], [0.05, 0.4]])
    batched = parton_luminosity(pdf, 2, -2, tau, 50.0)
    assert batched.shape == (2, 2)
    one_by_one = torch.stack([parton_luminosity(pdf, 2, -2, t, 50.0) for t in tau.flatten()]).reshape(2, 2)
    torch.testing.assert_close(batched, one_by_one, rtol=1e-14, atol=0)
    # Swapping a and b maps x → τ/x, a symmetry of the integral (up to quadrature error).
    torch.testing.assert_close(parton_luminosity(pdf, -2, 2, tau, 50.0), batched, rtol=1e-4, atol=0)
    assert parton_luminosity(pdf, 21, 21, 1.0, 50.0).item() == 0.0
    for bad_tau in (0.0, 1.5, math.nan):
        with pytest.raises(InvalidInputError, match="tau"):
            parton_luminosity(pdf, 21, 21, bad_tau, 50.0)
