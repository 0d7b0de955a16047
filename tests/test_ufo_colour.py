"""Exact SU(3) colour algebra for UFO models (sbihep.physics.ufo.colour).

Checked against textbook identities (Casimirs, Fierz, d d and ε ε sums, Jacobi), the colour matrices of
q q̄ → g g, g g → g g and g g → g g g, and every colour string of the two SMEFTsim 3.0 models.
"""

import itertools
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from sbihep.errors import ConvergenceError, InvalidInputError, ModelFormatError, ShapeError
from sbihep.physics.ufo import ColourBasis, colour_basis, contract, load_ufo, parse_colour
from sbihep.physics.ufo.colour import (
    LEVI_CIVITA_3,
    STRUCTURE_CONSTANTS_F,
    SU3_GENERATORS,
    SYMMETRIC_D,
    parse_colour_expression,
)

T = SU3_GENERATORS
F = STRUCTURE_CONSTANTS_F
D = SYMMETRIC_D
EPS = LEVI_CIVITA_3
I3 = np.eye(3)
I8 = np.eye(8)
UFO_DIR = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "ufo"
MODELS = ["SMEFTsim_U35_MwScheme_UFO", "SMEFTsim_top_MwScheme_UFO"]
FOUR_GLUON = ["f(-1,1,2)*f(3,4,-1)", "f(-1,1,3)*f(2,4,-1)", "f(-1,1,4)*f(2,3,-1)"]


# --------------------------------------------------------------------------------------
# constants and identities
# --------------------------------------------------------------------------------------
def test_generator_algebra():
    assert T.shape == (8, 3, 3) and F.shape == (8, 8, 8) and D.shape == (8, 8, 8)
    np.testing.assert_allclose(np.einsum("aij,bji->ab", T, T), I8 / 2, atol=1e-15)
    np.testing.assert_allclose(T, np.conj(T.transpose(0, 2, 1)), atol=0)  # Hermitian
    np.testing.assert_allclose(np.einsum("aii->a", T), 0, atol=1e-15)
    tt = np.einsum("aij,bjk->abik", T, T)
    np.testing.assert_allclose(tt - tt.transpose(1, 0, 2, 3), 1j * np.einsum("abc,cik->abik", F, T), atol=1e-15)
    anti = tt + tt.transpose(1, 0, 2, 3)
    np.testing.assert_allclose(anti, np.einsum("ab,ik->abik", I8, I3) / 3 + np.einsum("abc,cik->abik", D, T), atol=1e-15)
    # f totally antisymmetric, d totally symmetric, familiar values
    for perm, sign in [((1, 0, 2), -1), ((0, 2, 1), -1), ((1, 2, 0), 1)]:
        np.testing.assert_array_equal(F.transpose(perm), sign * F)
        np.testing.assert_array_equal(D.transpose(perm), D)
    assert F[0, 1, 2] == 1.0
    assert F[3, 4, 7] == pytest.approx(np.sqrt(3) / 2, abs=1e-15)
    assert D[0, 0, 7] == pytest.approx(1 / np.sqrt(3), abs=1e-15)
    assert np.count_nonzero(F) == 6 * 9 and not F.flags.writeable


def test_casimirs_and_sums_via_contract():
    cf = contract([(T, "aij"), (T, "ajk")], "ik")
    np.testing.assert_allclose(cf, 4 / 3 * I3, atol=1e-15)
    ca = contract([(F, "acd"), (F, "bcd")], "ab")
    np.testing.assert_allclose(ca, 3 * I8, atol=1e-14)
    assert contract([(D, "abc"), (D, "abc")], []) == pytest.approx(40 / 3, abs=1e-13)
    assert contract([(EPS, "ijk"), (EPS, "ijk")], []) == 6
    assert contract([(F, "abc"), (F, "abc")], []) == pytest.approx(24, abs=1e-13)
    # a trace inside one factor, and the empty network
    assert contract([(np.eye(3), ["i", "i"])], []) == 3
    assert contract([], []) == 1
    # d f contract to zero, Σ d^{aab} = 0
    np.testing.assert_allclose(contract([(D, "acd"), (F, "bcd")], "ab"), 0, atol=1e-15)


def test_fierz_identity():
    lhs = contract([(T, "aij"), (T, "akl")], "ijkl")
    rhs = 0.5 * (np.einsum("il,kj->ijkl", I3, I3) - np.einsum("ij,kl->ijkl", I3, I3) / 3)
    np.testing.assert_allclose(lhs, rhs, atol=1e-15)


def test_su3_invariants_of_four_adjoints():
    """8⊗8⊗8⊗8 holds 8 singlets; δδ (3) and d d (3) span only 5 (SU(3): Σ_cyclic d d = Σ_cyclic δδ/3)."""
    pairings = [("ab", "cd"), ("ac", "bd"), ("ad", "bc")]
    kk = [np.einsum(f"{p},{q}->abcd", I8, I8) for p, q in pairings]
    dd = [np.einsum(f"{p}e,{q}e->abcd", D, D) for p, q in pairings]
    ff = [np.einsum(f"{p}e,{q}e->abcd", F, F) for p, q in pairings]
    df = [np.einsum(f"{p}e,{q}e->abcd", D, F) for p, q in pairings] + [np.einsum(f"{q}e,{p}e->abcd", D, F) for p, q in pairings]
    assert colour_basis(kk + dd).size == 5
    np.testing.assert_allclose(sum(dd), sum(kk) / 3, atol=1e-14)
    assert colour_basis(kk + dd + ff + df).size == 8


# --------------------------------------------------------------------------------------
# parse_colour
# --------------------------------------------------------------------------------------
def test_parse_quark_gluon_vertex():
    # UFO vertex [u~, u, g]: T(3,2,1) = (T^{a3})_{i2 j1}; leg 1 (u~) has colour -3, leg 2 (u) colour 3
    x = parse_colour("T(3,2,1)", (-3, 3, 8))
    assert x.shape == (3, 3, 8) and x.dtype == np.complex128
    np.testing.assert_array_equal(x, T.transpose(2, 1, 0))
    assert not x.flags.writeable
    assert parse_colour("T(3,2,1)", (-3, 3, 8)) is x  # cached
    y = parse_colour("Identity(1,2)", [3, -3, 1])
    np.testing.assert_array_equal(y, I3[:, :, None])
    np.testing.assert_array_equal(parse_colour("1", (1, 1, 1)), np.ones((1, 1, 1)))
    np.testing.assert_array_equal(parse_colour("Identity(1,2)", (8, 8)), I8)
    np.testing.assert_array_equal(parse_colour("Epsilon(1,2,3)", (3, 3, 3)), EPS)
    np.testing.assert_array_equal(parse_colour("EpsilonBar(1,2,3)", (-3, -3, -3)), EPS)
    np.testing.assert_allclose(parse_colour("d(1,2,3)", (8, 8, 8)), D, atol=0)


def test_parse_arithmetic_and_products():
    reps = (8, 8, 3, -3)
    tt = np.einsum("aik,bkj->abij", T, T)
    np.testing.assert_allclose(parse_colour("T(1,2,3,4)", reps), tt, atol=1e-16)
    np.testing.assert_allclose(parse_colour("T(1,3,-1)*T(2,-1,4)", reps), tt, atol=1e-16)
    # [T^a, T^b] = i f^{abc} T^c in UFO strings, with complex(0,1), I and fractions
    comm = parse_colour("T(1,3,-1)*T(2,-1,4) - T(2,3,-1)*T(1,-1,4)", reps)
    np.testing.assert_allclose(comm, tt - tt.transpose(1, 0, 2, 3), atol=1e-16)
    np.testing.assert_allclose(parse_colour("complex(0,1)*f(1,2,-1)*T(-1,3,4)", reps), comm, atol=1e-15)
    np.testing.assert_allclose(parse_colour("I*f(1,2,-1)*T(-1,3,4)", reps), comm, atol=1e-15)
    np.testing.assert_allclose(
        parse_colour("(T(1,3,-1)*T(2,-1,4) + T(2,3,-1)*T(1,-1,4))/2 - Identity(1,2)*Identity(3,4)/6", reps),
        0.5 * np.einsum("abc,cij->abij", D, T),
        atol=1e-15,
    )
    # a δ with a dummy takes its representation from the other end
    np.testing.assert_allclose(parse_colour("Identity(1,-1)*T(-1,2,3)", (8, 3, -3)), T, atol=0)
    np.testing.assert_allclose(parse_colour("Identity(2,-1)*T(1,-1,3)", (8, 3, -3)), T, atol=0)
    np.testing.assert_allclose(parse_colour("2**-1*sqrt(4)*T(1,2,3)", (8, 3, -3)), T, atol=0)
    assert np.abs(parse_colour("T(1,2,3) - T(1,2,3)", (8, 3, -3))).max() == 0


@pytest.fixture(scope="module", params=MODELS)
def model(request):
    path = UFO_DIR / request.param
    if not path.is_dir():
        pytest.skip(f"SMEFTsim UFO reference data not present ({path})")
    return load_ufo(path)


def test_every_smeftsim_colour_string_parses(model):
    seen = set()
    for vertex in model.vertices:
        reps = tuple(p.color for p in vertex.particles)
        shape = tuple({1: 1, 3: 3, -3: 3, 8: 8}[r] for r in reps)
        for structure in vertex.color:
            x = parse_colour(structure, reps)
            assert x.shape == shape and x.dtype == np.complex128
            assert np.all(np.isfinite(x)) and np.abs(x).max() > 0
            seen.add(structure)
    # the strings the amplitude code leans on, against explicit einsums
    assert {"T(3,2,1)", "f(1,2,3)", *FOUR_GLUON, "T(-1,2,1)*T(-1,4,3)"} <= seen
    np.testing.assert_allclose(parse_colour("f(-1,1,2)*f(3,4,-1)", (8,) * 4), np.einsum("eab,cde->abcd", F, F), atol=1e-15)
    np.testing.assert_allclose(parse_colour("f(-1,1,3)*f(2,4,-1)", (8,) * 4), np.einsum("eac,bde->abcd", F, F), atol=1e-15)
    np.testing.assert_allclose(
        parse_colour("T(-1,2,1)*T(-1,4,3)", (-3, 3, -3, 3)), np.einsum("eji,elk->ijkl", T, T), atol=1e-16
    )
    np.testing.assert_allclose(parse_colour("f(-1,3,4)*T(-1,2,1)", (-3, 3, 8, 8)), np.einsum("ecd,eji->ijcd", F, T), atol=1e-16)


def test_smeftsim_five_gluon_vertex_spans_the_ddm_basis(model):
    """The 30 colour structures of the 5-gluon vertex (f f f half-ladders) span (5−2)! = 6 dimensions."""
    five = [v for v in model.vertices if [p.color for p in v.particles] == [8] * 5]
    assert five
    tensors = [parse_colour(c, (8,) * 5) for c in five[0].color]
    assert len(tensors) == 30
    cb = colour_basis(tensors)
    assert cb.size == 6
    assert all(m == 216 for m in np.diag(cb.rational_matrix()))  # Σ |f f f|² = N³(N²−1)


# --------------------------------------------------------------------------------------
# parse errors
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "structure, reps, message",
    [
        ("g(1,2,3)", (8, 8, 8), "unknown colour function 'g'"),
        ("__import__('os')", (8, 8, 8), "unknown colour function"),
        ("f(1,2)", (8, 8), "f takes 3 indices"),
        ("T(1,2)", (3, -3), "T takes at least 3"),
        ("T(3,2,1)", (3, -3, 8), "leg 2 has colour -3"),
        ("T(1,2,3)", (8, 3, 8), "leg 3 has colour 8"),
        ("f(1,2,3)", (8, 8, 1), "leg 3 is colourless"),
        ("T(-1,2,1)", (-3, 3), "dummy index -1 occurs 1 times"),
        ("f(-1,1,2)*f(-1,3,-1)", (8, 8, 8), "dummy index -1 occurs 3 times"),
        ("Identity(1,2)", (3, 3), "joins a colour-3 slot with a colour-3 slot"),
        ("Epsilon(-1,1,2)*Epsilon(-1,3,4)", (3, 3, 3, 3), "joins a colour-3 slot"),
        ("Identity(1,2)", (3, -3, 8), "no colour index for the coloured leg(s) [3]"),
        ("Identity(1,4)", (3, -3), "the vertex has 2 legs"),
        ("T(1,1,2)", (8, 3, -3), "leg index 1 occurs 2 times"),
        ("T(0,1,2)", (8, 3, -3), "index 0"),
        ("T(1.5,2,3)", (8, 3, -3), "integer indices"),
        ("T(1,2,3) / T(1,2,3)", (8, 3, -3), "division by a colour tensor"),
        ("f(1,2,3)**2", (8, 8, 8), "** is only allowed between numbers"),
        ("f(1,2,", (8, 8, 8), "not a valid expression"),
        ("0**-1*f(1,2,3)", (8, 8, 8), "0**-1"),
        ("f(1,2,3)/(1-1)", (8, 8, 8), "division by zero"),
        ("x*f(1,2,3)", (8, 8, 8), "unknown name 'x'"),
        ("T6(1,2,3)", (8, 6, -6), "sextet"),
        ("Identity(1,2)", (6, -6), "sextet"),
        ("Identity(1,2)", (3, 5), "unknown colour representation 5"),
    ],
)
def test_parse_errors(structure, reps, message):
    with pytest.raises(ModelFormatError) as info:
        parse_colour(structure, reps)
    assert message in str(info.value)
    assert repr(structure) in str(info.value)


def test_parse_expression_is_cached_and_not_executed():
    e = parse_colour_expression("f(-1,1,2)*f(3,4,-1)")
    assert parse_colour_expression("f(-1,1,2)*f(3,4,-1)") is e and e.legs() == {1, 2, 3, 4}
    with pytest.raises(InvalidInputError):
        parse_colour_expression(3)


# --------------------------------------------------------------------------------------
# contract errors
# --------------------------------------------------------------------------------------
def test_contract_errors():
    with pytest.raises(ShapeError, match="length 8"):
        contract([(T, "aij"), (F, "ajk")], "ik")  # j: 3 vs 8
    with pytest.raises(ShapeError, match="needs 3 labels"):
        contract([(T, "ai")], "ai")
    with pytest.raises(InvalidInputError, match="on 3 axes"):
        contract([(F, "abc"), (F, "abd"), (F, "aef")], "cdef")
    with pytest.raises(InvalidInputError, match="on one axis only"):
        contract([(T, "aij")], "ai")
    with pytest.raises(InvalidInputError, match="open label 'x'"):
        contract([(T, "aij")], "aijx")
    with pytest.raises(InvalidInputError, match="repeat"):
        contract([(I3, "ij")], "iij")
    with pytest.raises(InvalidInputError, match="not hashable"):
        contract([(I3, [["i"], "j"])], "j")
    # the size guard: the result, then an intermediate (every pairwise step of Tr(T^a T^b T^c) f^{abc}
    # has 576 entries although the result is a number)
    with pytest.raises(InvalidInputError, match="result would have 262144 entries"):
        contract([(F, "abc"), (F, "def")], "abcdef", max_size=10**5)
    network = [(T, "aij"), (T, "bjk"), (T, "cki"), (F, "abc")]
    with pytest.raises(InvalidInputError, match="intermediate of the colour contraction would have 576"):
        contract(network, [], max_size=100)
    assert contract(network, []) == pytest.approx(6j, abs=1e-13)  # Tr(T^aT^bT^c) f^{abc} = i N(N²−1)/4
    # labels may be any hashables; the result follows open_labels' order
    out = contract([(T, [("g", 1), ("q", 2), ("q", 1)])], [("q", 1), ("q", 2), ("g", 1)])
    np.testing.assert_array_equal(out, T.transpose(2, 1, 0))


# --------------------------------------------------------------------------------------
# colour bases: q q̄ → g g, g g → g g, g g → g g g
# --------------------------------------------------------------------------------------
def qqbar_gg_tensors():
    """s, t, u colour tensors of u u~ > g g as diagram networks of UFO vertices (legs all outgoing).

    External legs: 0 = ū (colour −3, the crossed incoming u; index j), 1 = u (colour 3, the crossed
    incoming ū; index i), 2 = g (a), 3 = g (b).  Axes of each tensor: (i, j, a, b).
    """
    qqg = parse_colour("T(3,2,1)", (-3, 3, 8))  # UFO vertex [u~, u, g]
    ggg = parse_colour("f(1,2,3)", (8, 8, 8))  # [g, g, g]
    open_ = ["i", "j", "a", "b"]
    # s: [u~(j), u(i), g(x)] — [g(x), g(a), g(b)]
    s = contract([(qqg, ["j", "i", "x"]), (ggg, ["x", "a", "b"])], open_)
    # t: [u~(j), u(x), g(b)] — [u~(x), u(i), g(a)]: the internal u line x joins a 3-axis to a −3-axis
    t = contract([(qqg, ["j", "x", "b"]), (qqg, ["x", "i", "a"])], open_)
    u = contract([(qqg, ["j", "x", "a"]), (qqg, ["x", "i", "b"])], open_)
    return s, t, u


def test_qqbar_gg_colour_matrix():
    s, t, u = qqbar_gg_tensors()
    ab = np.einsum("aik,bkj->ijab", T, T)  # (T^a T^b)_ij
    np.testing.assert_allclose(t, ab, atol=1e-16)
    np.testing.assert_allclose(u, ab.transpose(0, 1, 3, 2), atol=1e-16)
    np.testing.assert_allclose(s, np.einsum("abe,eij->ijab", F, T), atol=1e-16)

    cb = colour_basis([t, u, s])
    assert isinstance(cb, ColourBasis) and cb.size == 2 and cb.indices == (0, 1)
    assert cb.matrix.dtype == np.float64 and cb.matrix.shape == (2, 2)
    assert cb.rational_matrix() == ((Fraction(16, 3), Fraction(-2, 3)), (Fraction(-2, 3), Fraction(16, 3)))
    # f^{abe} T^e = −i [T^a, T^b] = −i (T^a T^b − T^b T^a)
    np.testing.assert_allclose(cb.coefficients, [[1, 0], [0, 1], [-1j, 1j]], atol=1e-15)
    full = cb.diagram_matrix()
    direct = np.einsum("dx,ex->de", np.stack([t, u, s]).reshape(3, -1), np.stack([t, u, s]).reshape(3, -1).conj())
    np.testing.assert_allclose(full, direct, atol=1e-13)
    assert full[2, 2] == pytest.approx(12.0, abs=1e-13)  # Σ |f T|² = C_A C_F N = 12

    # the s channel first: the basis (s, t) has a complex matrix (Σ s t* = −6i)
    cb2 = colour_basis([s, t, u])
    assert cb2.indices == (0, 1) and cb2.matrix.dtype == np.complex128
    np.testing.assert_allclose(cb2.matrix, cb2.matrix.conj().T, atol=0)
    with pytest.raises(InvalidInputError, match="complex"):
        cb2.rational_matrix()
    real, imag = cb2.rational_matrix_parts()
    assert real == ((12, 0), (0, Fraction(16, 3))) and imag == ((0, -6), (6, 0))
    np.testing.assert_allclose(cb2.diagram_matrix(), direct[[2, 0, 1]][:, [2, 0, 1]], atol=1e-13)


def test_colour_basis_edge_cases():
    s, t, u = qqbar_gg_tensors()
    cb = colour_basis([np.zeros_like(t), t, 2 * t, u])
    assert cb.indices == (1, 3)
    np.testing.assert_array_equal(cb.coefficients[0], 0)
    np.testing.assert_allclose(cb.coefficients[2], [2, 0], atol=1e-15)
    empty = colour_basis([np.zeros((3, 3))])
    assert empty.size == 0 and empty.coefficients.shape == (1, 0) and empty.matrix.shape == (0, 0)
    one = colour_basis([np.ones((1, 1, 1))])
    assert one.rational_matrix() == ((1,),)
    with pytest.raises(ShapeError, match="empty"):
        colour_basis([])
    with pytest.raises(ShapeError, match="shape"):
        colour_basis([t, t[..., :4]])
    with pytest.raises(ShapeError, match="non-finite"):
        colour_basis([t * np.nan])
    with pytest.raises(InvalidInputError, match="rtol"):
        colour_basis([t], rtol=0)
    # a tensor dependent to 1e-10 only: neither clearly dependent nor clearly independent
    noise = np.random.default_rng(1).normal(size=t.shape)
    with pytest.raises(ConvergenceError, match="tensors\\[1\\]"):
        colour_basis([t, t + 1e-10 * np.linalg.norm(t) * noise / np.linalg.norm(noise)])
    # a matrix that is no fraction with a small denominator is refused
    irrational = colour_basis([np.array([np.pi, 1.0])])
    with pytest.raises(InvalidInputError, match="not a fraction"):
        irrational.rational_matrix(max_denominator=1000)


def test_gg_gg_colour_space_is_two_dimensional():
    """Tree g g → g g: the s/t/u exchanges and the 4-gluon vertex's three f f structures span 2
    dimensions (Jacobi: f^{abe}f^{cde} − f^{ace}f^{bde} + f^{ade}f^{bce} = 0), of the 8 singlets of 8⁴."""
    ggg = parse_colour("f(1,2,3)", (8, 8, 8))
    open_ = list("abcd")
    s = contract([(ggg, "abx"), (ggg, "xcd")], open_)
    t = contract([(ggg, "acx"), (ggg, "xbd")], open_)
    u = contract([(ggg, "adx"), (ggg, "xbc")], open_)
    contact = [parse_colour(c, (8,) * 4) for c in FOUR_GLUON]
    np.testing.assert_allclose(contact[0], s, atol=1e-15)
    np.testing.assert_allclose(contact[1], t, atol=1e-15)
    np.testing.assert_allclose(contact[2], u, atol=1e-15)
    cb = colour_basis([s, t, u, *contact])
    assert cb.size == 2 and cb.indices == (0, 1)
    np.testing.assert_allclose(cb.coefficients[2], [-1, 1], atol=1e-15)  # u = t − s
    assert cb.rational_matrix() == ((72, 36), (36, 72))  # N²(N²−1), N²(N²−1)/2


def test_gg_ggg_colour_matrix():
    """All 25 tree diagrams of 5 gluons: 15 with two 3-gluon vertices, 10 with a 3- and a 4-gluon
    vertex (three colour structures each) → 45 colour tensors spanning (5−2)! = 6 dimensions."""
    ggg = parse_colour("f(1,2,3)", (8, 8, 8))
    gggg = [parse_colour(c, (8,) * 4) for c in FOUR_GLUON]
    legs = "abcde"
    tensors = []
    for m in legs:  # cubic trees: (i j) x — m — y (k l)
        rest = [x for x in legs if x != m]
        for first in [(rest[0], rest[1]), (rest[0], rest[2]), (rest[0], rest[3])]:
            second = tuple(x for x in rest if x not in first)
            tensors.append(contract([(ggg, [*first, "x"]), (ggg, ["x", m, "y"]), (ggg, ["y", *second])], list(legs)))
    assert len(tensors) == 15
    for pair in itertools.combinations(legs, 2):  # (i j) x — 4-vertex(x, k, l, m)
        rest = [x for x in legs if x not in pair]
        for c in gggg:
            tensors.append(contract([(ggg, [*pair, "x"]), (c, ["x", *rest])], list(legs)))
    assert len(tensors) == 45
    cb = colour_basis(tensors)
    assert cb.size == 6
    rational = cb.rational_matrix()
    assert all(rational[c][c] == 216 for c in range(6))
    assert all(q.denominator == 1 for row in rational for q in row)
    np.testing.assert_allclose(np.array(rational, dtype=float), cb.matrix, atol=1e-11)
    np.testing.assert_allclose(cb.matrix, cb.matrix.T, atol=0)
    assert np.all(np.linalg.eigvalsh(cb.matrix) > 1.0)  # a basis: positive definite Gram matrix
    # every diagram tensor is ± a half-ladder: the coefficients are small integers
    np.testing.assert_allclose(cb.coefficients, np.round(cb.coefficients.real), atol=1e-12)


def test_matrix_is_what_amplitudes_gram_takes():
    """Amplitudes.gram computes Σ X_c C_cc' conj(Y_c'): with C = matrix it is the colour-summed
    Σ_colours (Σ_c X_c b_c)(Σ_c Y_c b_c)^*, also for a complex colour matrix."""
    torch = pytest.importorskip("torch")
    from sbihep.physics.processes.base import Amplitudes

    s, t, u = qqbar_gg_tensors()
    cb = colour_basis([s, t, u])  # basis (s, t): complex matrix
    assert np.iscomplexobj(cb.matrix)
    rng = np.random.default_rng(7)
    a = rng.normal(size=(2, 3, 1, 2)) + 1j * rng.normal(size=(2, 3, 1, 2))  # (K, N, H, C)
    amps = Amplitudes(torch.as_tensor(a), torch.as_tensor(np.array(cb.matrix)), average=1.0)
    gram = amps.gram().numpy()  # (K, K, N)
    m = np.einsum("knhc,c...->knh...", a, cb.basis).reshape(2, 3, 1, -1)  # the colour-resolved amplitudes
    direct = np.einsum("knhx,lnhx->kln", m, m.conj()).real
    np.testing.assert_allclose(gram, direct, rtol=1e-12)
