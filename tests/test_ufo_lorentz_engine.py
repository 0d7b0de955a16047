"""The UFO Lorentz engine (sbihep.physics.ufo.lorentz_expr / lorentz_compile / wavefunctions / propagators).

Checked against: every Lorentz structure of the two SMEFTsim 3.0 models (parse, compile, vertex vs
off-shell consistency, an independent term-by-term einsum evaluation, Lorentz invariance of the
helicity-summed square), the hand-written HELAS routines of sbihep.physics.helas, and Ward identities.
"""

import itertools
import math
from pathlib import Path

import pytest
import torch

from sbihep.errors import DataFormatError, InvalidInputError, ShapeError
from sbihep.physics import helas
from sbihep.physics.lorentz import dot, levi_civita
from sbihep.physics.ufo import compile_lorentz, linear_combination, load_ufo, parse_structure
from sbihep.physics.ufo import propagators as prop
from sbihep.physics.ufo.wavefunctions import external_wavefunctions, fermion_wavefunctions, vector_wavefunctions

torch.set_num_threads(1)
CD = torch.complex128
UFO_DIR = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "ufo"
MODELS = ["SMEFTsim_U35_MwScheme_UFO", "SMEFTsim_top_MwScheme_UFO"]


def ufo_lorentz(model):
    """(name, spins, structure) of every Lorentz object of a UFO model, as sbihep's reader gives them."""
    path = UFO_DIR / model
    if not path.is_dir():
        pytest.skip(f"SMEFTsim UFO reference data not present ({path})")
    return [(lor.name, lor.spins, lor.structure) for lor in load_ufo(path).lorentz.values()]


def random_momenta(n, mass, gen, scale=60.0):
    p3 = torch.randn(n, 3, generator=gen, dtype=torch.float64) * scale
    return torch.cat([torch.sqrt((p3**2).sum(-1) + mass**2)[:, None], p3], -1)


def random_complex(shape, gen):
    return torch.complex(torch.randn(shape, generator=gen, dtype=torch.float64), torch.randn(shape, generator=gen, dtype=torch.float64))


# --------------------------------------------------------------------------------------
# An independent evaluator: each term as one einsum with its own Dirac matrices
# --------------------------------------------------------------------------------------
def _own_constants():
    s0 = torch.eye(2, dtype=CD)
    sx = torch.tensor([[0, 1], [1, 0]], dtype=CD)
    sy = torch.tensor([[0, -1j], [1j, 0]], dtype=CD)
    sz = torch.tensor([[1, 0], [0, -1]], dtype=CD)
    z = torch.zeros(2, 2, dtype=CD)

    def blk(a, b, c, d):
        return torch.cat([torch.cat([a, b], 1), torch.cat([c, d], 1)], 0)

    g = torch.stack([blk(z, s0, s0, z)] + [blk(z, s, -s, z) for s in (sx, sy, sz)])
    g5 = 1j * g[0] @ g[1] @ g[2] @ g[3]  # γ⁵ = iγ⁰γ¹γ²γ³
    eps = torch.zeros(4, 4, 4, 4, dtype=CD)
    for perm in itertools.permutations(range(4)):
        sign = 1
        for i in range(4):
            for j in range(i + 1, 4):
                if perm[i] > perm[j]:
                    sign = -sign
        eps[perm] = -sign  # ε^{0123} = −1
    eye = torch.eye(4, dtype=CD)
    sigma = torch.stack([torch.stack([0.5j * (g[m] @ g[n] - g[n] @ g[m]) for n in range(4)]) for m in range(4)])
    metric = torch.diag(torch.tensor([1.0, -1, -1, -1], dtype=CD))
    return {
        "Gamma": g, "Gamma5": g5, "ProjM": (eye - g5) / 2, "ProjP": (eye + g5) / 2, "Identity": eye,
        "IdentityL": eye, "C": 1j * g[2] @ g[0], "Sigma": sigma, "Metric": metric, "Epsilon": eps,
    }  # fmt: skip


OWN = _own_constants()
LOWER = torch.tensor([1.0, -1, -1, -1], dtype=CD)


def naive_amplitude(expr, spins, wavefunctions, momenta):
    """Σ_terms einsum(factors, wavefunctions) for one batch of events: (N,) complex."""
    total = 0
    for term in expr.terms:
        ops, labels = [], iter(range(1, 52))
        dummy, lorentz_first = {}, {}
        for f in term.factors:
            subs = []
            for a, k in zip(f.args, f.kinds):
                if k == "leg":
                    continue
                if a > 0:
                    subs.append(100 + a)
                elif k == "L":
                    lab = next(labels)
                    if a in lorentz_first:  # second copy: contract through g_{μν}
                        ops += [torch.diag(LOWER), [lorentz_first[a], lab]]
                    else:
                        lorentz_first[a] = lab
                    subs.append(lab)
                else:
                    dummy.setdefault(a, next(labels))
                    subs.append(dummy[a])
            if f.name == "P":
                ops += [-momenta[f.args[1] - 1].to(CD), [0, subs[0]]]  # P(μ, N): leg N's outgoing momentum
            else:
                ops += [OWN[f.name], subs]
        for leg, (s, w) in enumerate(zip(spins, wavefunctions)):
            if s == 3:
                ops += [w * LOWER, [0, 101 + leg]]
            elif s == 2:
                ops += [w, [0, 101 + leg]]
        # relabel leg indices into the einsum range (< 52)
        remap = {}
        for i in range(1, len(ops), 2):
            ops[i] = [remap.setdefault(x, 30 + len(remap)) if x >= 100 else x for x in ops[i]]
        with torch.backends.opt_einsum.flags(strategy="greedy"):
            value = torch.einsum(*ops, [0]) if ops else torch.ones(1, dtype=CD)
        for s, w in zip(spins, wavefunctions):
            if s == 1:
                value = value * w
        total = total + term.coefficient * value
    return total


def random_inputs(spins, gen, n=3, conserve=True):
    wfs = [random_complex((n,) if s == 1 else (n, 4), gen) for s in spins]
    moms = [torch.randn(n, 4, generator=gen, dtype=torch.float64) * 50 for _ in spins]
    if conserve:
        moms[-1] = -sum(moms[:-1])
    return wfs, moms


# --------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------
def test_parse_coefficients_and_powers():
    e = parse_structure("(4*Gamma(3,2,-1)*ProjP(-1,1))/3. - complex(0,1)*Gamma(3,2,1)")
    assert [t.coefficient for t in e.terms] == pytest.approx([4 / 3, -1j])
    assert [str(f) for f in e.terms[0].factors] == ["Gamma(3,2,-1)", "ProjP(-1,1)"]
    sq = parse_structure("P(-1,1)**2")
    assert len(sq.terms) == 1 and [str(f) for f in sq.terms[0].factors] == ["P(-1,1)", "P(-1,1)"]
    # a power of an already contracted product renames the dummies of the copies
    sq2 = parse_structure("(P(-1,1)*P(-1,2))**2")
    assert len(sq2.terms[0].dummies()) == 2 and all(v == 2 for v in sq2.terms[0].dummies().values())
    assert parse_structure("1").terms[0].factors == ()
    assert parse_structure("Metric(1,2) - Metric(1,2)").terms != ()  # like terms are not merged ...
    c = compile_lorentz("Metric(1,2) - Metric(1,2)", (3, 3))  # ... but compile to zero
    v = random_complex((2, 4), torch.Generator().manual_seed(0))
    assert c.amplitude([v, v]).abs().max() == 0


@pytest.mark.parametrize(
    "bad, match",
    [
        ("Gamma(3,2,1", "not a valid expression"),
        ("Foo(1,2)", "unknown function"),
        ("Metric(-1,-1)*Metric(-1,2)", "appears 3 times"),
        ("Metric(1,1)", "appears 2 times"),
        ("P(-1,1)**0.5", "non-negative integer power"),
        ("Metric(1,2)/P(-1,1)", "division by a number"),
        ("Gamma(1,2)", "takes 3 integer arguments"),
        ("P(1,0)", "leg number"),
        ("__import__('os')", "unknown function"),
        ("", "non-empty"),
    ],
)
def test_parse_errors(bad, match):
    with pytest.raises(DataFormatError, match=match):
        parse_structure(bad)


def test_compile_rejects_mismatched_spins():
    with pytest.raises(DataFormatError, match="spin"):
        compile_lorentz("Gamma(3,2,1)", (2, 2, 1))
    with pytest.raises(DataFormatError, match="open indices"):
        compile_lorentz("Metric(1,2)", (3, 3, 3))
    with pytest.raises(InvalidInputError, match="spin 5"):
        compile_lorentz("1", (1, 5))
    c = compile_lorentz("Gamma(3,2,1)", (2, 2, 3))
    assert c.slots == ("column", "row", "vector")
    with pytest.raises(ShapeError, match="expected 3 wavefunctions"):
        c.amplitude([torch.zeros(1, 4, dtype=CD)] * 2)
    with pytest.raises(ShapeError, match="offshell currents need the momenta of all other legs"):
        c.offshell(2, [torch.zeros(1, 4, dtype=CD)] * 2 + [None], [None, None, None])
    with pytest.raises(InvalidInputError, match="leg must be"):
        c.vertex_current(3, [None] * 3, [None] * 3)


# --------------------------------------------------------------------------------------
# Every SMEFTsim structure
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("model, count", [(MODELS[0], 259), (MODELS[1], 261)])
def test_every_smeftsim_structure_compiles_and_is_consistent(model, count):
    """Parse + compile all structures; amplitude = naive einsum; vertex_current(k)·w_k = amplitude ∀k."""
    structures = ufo_lorentz(model)
    assert len(structures) == count
    gen = torch.Generator().manual_seed(7)
    worst_naive = worst_current = 0.0
    for name, spins, structure in structures:
        c = compile_lorentz(structure, spins, name)
        # the naive check with momenta that do not add up to zero (some structures, e.g. VVV3 =
        # ε^{123μ}(p₁+p₂+p₃)_μ, vanish by momentum conservation)
        wfs, moms = random_inputs(spins, gen, conserve=False)
        ref = naive_amplitude(c.expression, spins, wfs, moms)
        worst_naive = max(worst_naive, float((c.amplitude(wfs, moms) - ref).abs().max() / ref.abs().max()))
        wfs, moms = random_inputs(spins, gen)
        amp = c.amplitude(wfs, moms)
        scale = torch.maximum(amp.abs().max(), ref.abs().max())  # VVV3 vanishes when momenta add up to 0
        for k in range(len(spins)):
            cur = c.vertex_current(k, [None if j == k else w for j, w in enumerate(wfs)], [None if j == k else p for j, p in enumerate(moms)])
            w = wfs[k]
            if spins[k] == 3:
                closed = dot(cur, w)
            elif spins[k] == 2:
                closed = (cur * w).sum(-1)
            else:
                closed = cur * w
            worst_current = max(worst_current, float((closed - amp).abs().max() / scale))
    assert worst_naive < 1e-12, worst_naive
    assert worst_current < 1e-12, worst_current


@pytest.mark.parametrize("model", MODELS)
def test_every_smeftsim_structure_is_lorentz_invariant(model):
    """Σ_hel |amplitude|² with physical wavefunctions is the same in a boosted and rotated frame."""
    gen = torch.Generator().manual_seed(11)
    masses = {1: 125.0, 2: 5.0, 3: 80.0}
    lam = _random_lorentz(gen)
    worst = 0.0
    for name, spins, structure in ufo_lorentz(model):
        c = compile_lorentz(structure, spins, name)
        n = 1 if len(spins) > 4 else 2  # 3^6 helicity combinations for six massive vectors
        moms = [random_momenta(n, masses[s], gen) for s in spins]
        values = []
        for frame in (moms, [p @ lam.T for p in moms]):
            wfs = []
            for leg, (s, p) in enumerate(zip(spins, frame)):
                kind = {"scalar": "in", "vector": "in", "column": "u", "row": "ubar"}[c.slots[leg]]
                w = external_wavefunctions(p, s, kind, masses[s])  # (N, H) or (N, H, 4)
                shape = [n] + [1] * len(spins)
                shape[1 + leg] = w.shape[1]
                wfs.append(w.reshape(shape + ([4] if s != 1 else [])))
            amp = c.amplitude(wfs, [p.reshape([n] + [1] * len(spins) + [4]) for p in frame])
            values.append((amp.abs() ** 2).flatten(1).sum(-1))
        scale = values[0].abs().max()
        if scale > 0:
            worst = max(worst, float((values[0] - values[1]).abs().max() / scale))
    assert worst < 1e-10, worst


def _random_lorentz(gen):
    """A random boost (|β| ≈ 0.8) times a rotation, as a 4×4 matrix acting on contravariant vectors."""
    beta = torch.randn(3, generator=gen, dtype=torch.float64)
    beta = 0.8 * beta / beta.norm()
    gamma = 1 / math.sqrt(1 - float(beta @ beta))
    boost = torch.eye(4, dtype=torch.float64)
    boost[0, 0] = gamma
    boost[0, 1:] = boost[1:, 0] = gamma * beta
    boost[1:, 1:] += (gamma - 1) * torch.outer(beta, beta) / float(beta @ beta)
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=gen, dtype=torch.float64))
    rot = torch.eye(4, dtype=torch.float64)
    rot[1:, 1:] = q * torch.sign(torch.det(q))
    return boost @ rot


# --------------------------------------------------------------------------------------
# Against helas and known identities
# --------------------------------------------------------------------------------------
def test_ffv_and_fermion_currents_match_helas():
    gen = torch.Generator().manual_seed(3)
    m = 4.7
    p1, p2, k = random_momenta(6, m, gen), random_momenta(6, m, gen), random_momenta(6, 80.0, gen)
    u = helas.incoming_fermion(p1, 1, m)
    ubar = helas.outgoing_fermion(p2, -1, m)
    eps = helas.vector_polarisation(k, 0, 80.0)
    gl, gr = 0.3 - 0.1j, -0.7
    vertex = compile_lorentz(
        linear_combination([(gl, parse_structure("Gamma(3,2,-1)*ProjM(-1,1)")), (gr, parse_structure("Gamma(3,2,-1)*ProjP(-1,1)"))]), (2, 2, 3)
    )
    ref = helas.fermion_current(ubar, u, gl, gr)
    assert torch.allclose(vertex.amplitude([u, ubar, eps]), dot(ref, eps), rtol=1e-13, atol=1e-12)
    assert torch.allclose(vertex.vertex_current(2, [u, ubar, None]), ref, rtol=1e-13, atol=1e-12)
    # off-shell fermions: helas includes the vertex factor i, the engine leaves couplings to the caller
    q_in = p1 + k  # column result (open ψ̄ slot): momentum along the arrow out of the vertex
    mom = [p1, -p2, k]
    ours = vertex.offshell(1, [u, None, eps], mom, 172.5, 1.4)
    theirs = helas.ffv_offshell_fermion_in(u, eps, q_in, gl, gr, 172.5, 1.4)
    assert torch.allclose(1j * ours, theirs, rtol=1e-12, atol=1e-14)
    ours = vertex.offshell(0, [None, ubar, eps], mom, 172.5, 1.4)  # row result
    theirs = helas.ffv_offshell_fermion_out(ubar, eps, p2 - k, gl, gr, 172.5, 1.4)
    assert torch.allclose(1j * ours, theirs, rtol=1e-12, atol=1e-14)


def test_vector_vertices_match_helas():
    gen = torch.Generator().manual_seed(4)
    k1, k2 = random_momenta(5, 0.0, gen), random_momenta(5, 0.0, gen)
    k3 = -(k1 + k2)
    e1, e2, e3 = (random_complex((5, 4), gen) for _ in range(3))
    ym = compile_lorentz(
        "P(3,1)*Metric(1,2) - P(3,2)*Metric(1,2) - P(2,1)*Metric(1,3) + P(2,3)*Metric(1,3) + P(1,2)*Metric(2,3) - P(1,3)*Metric(2,3)",
        (3, 3, 3),
    )
    # helas takes incoming momenta; UFO's P(μ, N) is the outgoing momentum of leg N: one sign per P
    assert torch.allclose(ym.amplitude([e1, e2, e3], [k1, k2, k3]), 1j * helas.vvv_amplitude(e1, k1, e2, k2, e3, k3, 1.0), rtol=1e-12)
    ours = ym.offshell(2, [e1, e2, None], [k1, k2, None], 80.4, 2.1)
    assert torch.allclose(ours, helas.vvv_current(e1, k1, e2, k2, 1j, 80.4, 2.1), rtol=1e-12, atol=1e-15)
    # CP-odd h V Ṽ: Epsilon(1,2,-1,-2) P(-2,2) P(-1,1) = ε_{μνρσ} ε₁^μ ε₂^ν k₁^ρ k₂^σ
    s = random_complex((5,), gen)
    vvs = compile_lorentz("Epsilon(1,2,-1,-2)*P(-2,2)*P(-1,1)", (3, 3, 1))
    ref = levi_civita(e1, e2, k1.to(CD), k2.to(CD)) * s
    assert torch.allclose(vvs.amplitude([e1, e2, s], [k1, k2, None]), ref, rtol=1e-12)
    # h V_{μν} V^{μν}: P(1,2)P(2,1) − P(-1,1)P(-1,2)Metric(1,2) = −[(k₁·k₂)(ε₁·ε₂) − (k₁·ε₂)(k₂·ε₁)]
    fs = compile_lorentz("P(1,2)*P(2,1) - P(-1,1)*P(-1,2)*Metric(1,2)", (3, 3, 1))
    ref = -(helas.vvs_field_strength_amplitude(e1, k1, e2, k2, s, 1.0) / 1j)
    assert torch.allclose(fs.amplitude([e1, e2, s], [k1, k2, None]), ref, rtol=1e-12)


def test_sigma_and_gamma5_algebra():
    gen = torch.Generator().manual_seed(5)
    a, b = random_complex((4, 4), gen), random_complex((4, 4), gen)
    eps1, eps2 = random_complex((4, 4), gen), random_complex((4, 4), gen)
    # Sigma(μ,ν,i,j) = (i/2)[γ^μ, γ^ν]: as written with two Gammas
    sig = compile_lorentz("Sigma(3,4,2,1)", (2, 2, 3, 3))
    two = compile_lorentz("complex(0,0.5)*(Gamma(3,2,-1)*Gamma(4,-1,1) - Gamma(4,2,-1)*Gamma(3,-1,1))", (2, 2, 3, 3))
    assert torch.allclose(sig.amplitude([a, b, eps1, eps2]), two.amplitude([a, b, eps1, eps2]), rtol=1e-13)
    # γ⁵ = iγ⁰γ¹γ²γ³ = (i/4!) ε_{μνρσ} γ^μγ^νγ^ργ^σ  (ε_{0123} = +1)
    g5 = compile_lorentz("Gamma5(2,1)", (2, 2))
    eps_form = compile_lorentz(
        "complex(0,1)/24*Epsilon(-1,-2,-3,-4)*Gamma(-1,2,-5)*Gamma(-2,-5,-6)*Gamma(-3,-6,-7)*Gamma(-4,-7,1)", (2, 2)
    )
    assert torch.allclose(g5.amplitude([a, b]), eps_form.amplitude([a, b]), rtol=1e-13)
    proj = compile_lorentz("ProjP(2,1) + ProjM(2,1) - Identity(2,1)", (2, 2))
    assert proj.amplitude([a, b]).abs().max() < 1e-14


def test_ward_identities():
    gen = torch.Generator().manual_seed(6)
    m = 1.777
    p1, p2 = random_momenta(8, m, gen), random_momenta(8, m, gen)
    # photon current of an on-shell line ū(p2) γ^μ u(p1): k·J = 0 with k = p1 − p2 into the line
    ffv1 = compile_lorentz("Gamma(3,2,1)", (2, 2, 3))
    for h1, h2 in itertools.product((-1, 1), repeat=2):
        u, ubar = helas.incoming_fermion(p1, h1, m), helas.outgoing_fermion(p2, h2, m)
        current = ffv1.vertex_current(2, [u, ubar, None], [p1, -p2, None])
        k = p2 - p1  # incoming momentum of the photon leg
        assert (dot(current, k.to(CD)).abs() < 1e-10 * current.abs().amax(-1) * p1[:, 0]).all()
    # dipole structures of SMEFTsim (σ^{μν} k_ν form): ε → k vanishes for any spinors
    for structure in (
        "-(P(-1,3)*Gamma(-1,2,-3)*Gamma(3,-3,-2)*ProjM(-2,1)) + P(-1,3)*Gamma(-1,-3,-2)*Gamma(3,2,-3)*ProjM(-2,1)",
        "-(P(-1,3)*Gamma5(-2,1)*Gamma(-1,2,-3)*Gamma(3,-3,-2)) + P(-1,3)*Gamma5(-2,1)*Gamma(-1,-3,-2)*Gamma(3,2,-3)",
    ):
        c = compile_lorentz(structure, (2, 2, 3))
        a, b = random_complex((8, 4), gen), random_complex((8, 4), gen)
        k = torch.randn(8, 4, generator=gen, dtype=torch.float64) * 30
        out = c.vertex_current(2, [a, b, None], [-k / 2, -k / 2, None])
        assert dot(out, k.to(CD)).abs().max() < 1e-11 * out.abs().max() * k.abs().max()
    # Yang–Mills vertex with two on-shell transverse gluons: k₃·V = 0
    k1, k2 = random_momenta(8, 0.0, gen), random_momenta(8, 0.0, gen)
    ym = compile_lorentz(
        "P(3,1)*Metric(1,2) - P(3,2)*Metric(1,2) - P(2,1)*Metric(1,3) + P(2,3)*Metric(1,3) + P(1,2)*Metric(2,3) - P(1,3)*Metric(2,3)",
        (3, 3, 3),
    )
    for h1, h2 in itertools.product((-1, 1), repeat=2):
        e1, e2 = helas.vector_polarisation(k1, h1), helas.vector_polarisation(k2, h2)
        v = ym.vertex_current(2, [e1, e2, None], [k1, k2, None])
        assert dot(v, (k1 + k2).to(CD)).abs().max() < 1e-10 * v.abs().max() * k1[:, 0].max()


def test_propagators_match_helas():
    gen = torch.Generator().manual_seed(8)
    q = random_momenta(7, 91.0, gen) * 1.3
    j = random_complex((7, 4), gen)
    assert torch.allclose(prop.vector_propagator(j, q, 91.1876, 2.4952), helas.vector_propagator(j, q, 91.1876, 2.4952), rtol=1e-13)
    assert torch.allclose(prop.vector_propagator(j, q, 0.0), helas.vector_propagator(j, q, 0.0), rtol=1e-13)
    s = helas.fermion_propagator(q, 172.5, 1.4)
    assert torch.allclose(prop.fermion_propagator_column(j, q, 172.5, 1.4), (s @ j[..., None])[..., 0], rtol=1e-12)
    assert torch.allclose(prop.fermion_propagator_row(j, q, 172.5, 1.4), (j[:, None, :] @ s)[:, 0], rtol=1e-12)
    assert torch.allclose(prop.scalar_propagator(j[:, 0], q, 125.0, 0.004), helas.scalar_propagator(q, 125.0, 0.004) * j[:, 0])
    with pytest.raises(InvalidInputError, match="mass and width"):
        prop.vector_propagator(j, q, -1.0)
    # broadcasting over a helicity axis
    out = prop.fermion_propagator_column(random_complex((7, 3, 4), gen), q[:, None], 5.0)
    assert out.shape == (7, 3, 4)


def test_wavefunctions_batch_helas():
    gen = torch.Generator().manual_seed(9)
    p = random_momenta(5, 4.7, gen)
    w = fermion_wavefunctions(p, (-1, 1), 4.7, "vbar")
    assert w.shape == (5, 2, 4)
    assert torch.equal(w[:, 1], helas.incoming_antifermion(p, 1, 4.7))
    v = vector_wavefunctions(p, (-1, 0, 1), 4.7, outgoing=True)
    assert torch.equal(v[:, 1], helas.vector_polarisation(p, 0, 4.7, True))
    assert external_wavefunctions(p, 1, "in").shape == (5, 1)
    assert external_wavefunctions(p, 3, "out", 80.0).shape == (5, 3, 4)
    with pytest.raises(InvalidInputError, match="helicity 0 needs mass"):
        vector_wavefunctions(p, (0,), 0.0)
    with pytest.raises(InvalidInputError, match="kind"):
        fermion_wavefunctions(p, (1,), 0.0, "w")
    with pytest.raises(ShapeError):
        fermion_wavefunctions(p[None], (1,), 0.0, "u")


def test_several_structures_per_vertex_and_folded_couplings():
    """compile_lorentz([...]) gives one output per structure; (S,) / (S, K) couplings fold them, differentiably."""
    from sbihep.physics.ufo import relabel_legs

    gen = torch.Generator().manual_seed(12)
    structures = ["Gamma(3,2,-1)*ProjM(-1,1)", "Gamma(3,2,-1)*ProjP(-1,1)", "P(-1,3)*Gamma(-1,-2,1)*Gamma(3,2,-2)"]
    multi = compile_lorentz(structures, (2, 2, 3))
    singles = [compile_lorentz(s, (2, 2, 3)) for s in structures]
    wfs = [random_complex((5, 2, 4), gen), random_complex((5, 1, 4), gen), random_complex((5, 2, 4), gen)]
    moms = [torch.randn(5, 1, 4, generator=gen, dtype=torch.float64) for _ in range(2)]
    moms.append(-(moms[0] + moms[1]))
    each = torch.stack([c.amplitude(wfs, moms) for c in singles], -1)
    assert torch.allclose(multi.amplitude(wfs, moms), each, rtol=1e-13, atol=1e-13)
    g = torch.tensor([[0.3 + 1j, 0.0], [-2.0, 1.0], [0.5j, 4.0]], dtype=CD, requires_grad=True)
    folded = multi.amplitude(wfs, moms, couplings=g)
    assert folded.shape == (5, 2, 2)
    assert torch.allclose(folded, each @ g.detach(), rtol=1e-12, atol=1e-13)
    assert torch.allclose(multi.amplitude(wfs, moms, couplings=g[:, 0]), (each @ g.detach())[..., 0], rtol=1e-12, atol=1e-13)
    # d amplitude / d coupling is the structure's own amplitude
    (grad,) = torch.autograd.grad(folded[..., 1].real.sum(), g)
    assert torch.allclose(grad[:, 1], each.sum((0, 1)).conj(), rtol=1e-12)
    # currents and off-shell wavefunctions carry the component axis before the Lorentz index
    cur = multi.offshell(2, wfs[:2] + [None], moms[:2] + [None], 80.4, 2.0, couplings=g.detach())
    assert cur.shape == (5, 2, 2, 4)
    ref = singles[1].offshell(2, wfs[:2] + [None], moms[:2] + [None], 80.4, 2.0)
    assert torch.allclose(cur[..., 1, :], ref + 4.0 * singles[2].offshell(2, wfs[:2] + [None], moms[:2] + [None], 80.4, 2.0), rtol=1e-12)
    with pytest.raises(ShapeError, match="couplings must have shape"):
        multi.amplitude(wfs, moms, couplings=torch.ones(2))
    with pytest.raises(DataFormatError, match="rows and columns"):
        compile_lorentz(["Gamma(3,2,1)", "Gamma(3,1,2)"], (2, 2, 3))
    # relabelling legs: FFFF17 with its fermion pairs exchanged
    e = parse_structure("Gamma(-1,2,-2)*Gamma(-1,4,-3)*ProjM(-2,1)*ProjP(-3,3)")
    swapped = compile_lorentz(relabel_legs(e, {1: 3, 2: 4, 3: 1, 4: 2}), (2, 2, 2, 2))
    original = compile_lorentz(e, (2, 2, 2, 2))
    w4 = [random_complex((3, 4), gen) for _ in range(4)]
    assert torch.allclose(swapped.amplitude(w4), original.amplitude([w4[2], w4[3], w4[0], w4[1]]), rtol=1e-13)
    with pytest.raises(DataFormatError, match="one-to-one"):
        relabel_legs(e, {1: 2})
