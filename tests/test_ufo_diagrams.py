"""Tree-level diagrams from the SMEFTsim UFO models: interactions, counts, signs, constraints."""

import shutil
import time
from collections import Counter
from pathlib import Path

import pytest
import torch

from sbihep.errors import InvalidInputError, ModelFormatError, UnknownParameterError, UnsupportedProcessError
from sbihep.physics.ufo import load_ufo, parse_process
from sbihep.physics.ufo.diagrams import Diagram, DiagramSet, Line, diagrams_for, generate_diagrams
from sbihep.physics.ufo.interactions import aloha_pairs, model_interactions, spinor_chains
from sbihep.physics.ufo.lorentz_compile import compile_lorentz
from sbihep.physics.ufo.lorentz_expr import parse_structure
from sbihep.physics.ufo.process_spec import OrderConstraint

UFO = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "ufo"
if not UFO.is_dir():
    UFO = Path("/work/shared/data/ufo")
U35 = UFO / "SMEFTsim_U35_MwScheme_UFO"
TOP = UFO / "SMEFTsim_top_MwScheme_UFO"
TOY = Path(__file__).parent / "data" / "ufo_toy"

pytestmark = pytest.mark.skipif(not U35.is_dir(), reason="SMEFTsim UFO models not available")


@pytest.fixture(scope="module")
def sm():
    return load_ufo(U35, restriction="restrict_SMlimit_massless.dat")


@pytest.fixture(scope="module")
def eft():
    return load_ufo(U35, restriction="restrict_massless.dat")


@pytest.fixture(scope="module")
def top_eft():
    return load_ufo(TOP, restriction="restrict_massless.dat")


@pytest.fixture(scope="module")
def top_sm():
    return load_ufo(TOP, restriction="restrict_SMlimit_massless.dat")


def diagrams(model, text, **kw) -> DiagramSet:
    spec = parse_process(text, model, **kw)
    return diagrams_for(model, spec.subprocesses[0], spec)


def canonical(d: Diagram, ds: DiagramSet):
    """A key that is the same for two diagrams that differ only by the order of identical legs: per
    vertex, its interaction and the multiset of (label, legs) of what is attached to it."""
    n = len(ds.external)
    keys = []

    def vertex_key(inter, lines, open_legs):
        att = []
        for leg, line in enumerate(lines):
            legs = open_legs if line is None else frozenset(line.legs)
            att.append((ds.interactions[inter].particles[leg], legs))
        return (inter, frozenset(Counter(att).items()))

    everything = frozenset(range(n))
    keys.append(vertex_key(d.interaction, d.lines, None))
    for line in d.internal_lines():
        keys.append(vertex_key(line.interaction, line.children, everything - frozenset(line.legs)))
    return frozenset(Counter(keys).items())


def check_structure(ds: DiagramSet):
    """Invariants every diagram set must satisfy."""
    n = len(ds.external)
    keys = [canonical(d, ds) for d in ds.diagrams]
    assert len(set(keys)) == len(keys), "a diagram counted twice"
    order = {line: k for k, line in enumerate(ds.lines())}
    for line in ds.lines():
        inter = ds.interactions[line.interaction]
        assert len(line.children) == len(inter.particles) and line.children.count(None) == 1
        assert inter.particles[line.children.index(None)] == line.particle
        legs = []
        for leg, c in enumerate(line.children):
            if c is None:
                continue
            assert c.parent_label == inter.particles[leg]  # the child attaches on a leg with its label
            legs += c.legs
            if c.interaction is not None:
                assert order[c] < order[line]  # children before parents
        assert tuple(sorted(legs)) == line.legs
    for d in ds.diagrams:
        inter = ds.interactions[d.interaction]
        assert [line.parent_label for line in d.lines] == list(inter.particles)
        assert sorted(x for line in d.lines for x in line.legs) == list(range(n))
        props = d.propagators()
        assert len(props) == len(d.internal_lines()) == sum(1 for _ in props)
        for pdg, legs in props:
            assert 2 <= len(legs) <= n - 2 and n - 1 not in legs
        n_vertices = 1 + len(props)
        assert n_vertices - 1 == len(props)
        orders = Counter()
        for line in d.internal_lines():
            orders.update(dict(ds.interactions[line.interaction].orders))
        orders.update(dict(inter.orders))
        assert dict(d.orders) == dict(orders)
        assert d.sign in (1, -1)


# ---- interactions --------------------------------------------------------------------------------
def test_interactions_merge_vertices_and_keep_every_term(sm, eft):
    for model in (sm, eft):
        inters = model_interactions(model)
        assert model_interactions(model) is inters  # cached per model
        assert [i.index for i in inters] == list(range(len(inters)))
        n_terms = sum(len(v.couplings[k]) if isinstance(v.couplings[k], list) else 1
                      for v in model.vertices for k in v.couplings)
        assert sum(len(i.terms) for i in inters) == n_terms  # no ghosts/goldstones; nothing zero dropped here
        for inter in inters:
            assert len({tuple(sorted(t.vertex.particles[p].pdg_code for p in t.leg_order)) for t in inter.terms}) == 1
            for t in inter.terms:
                assert tuple(t.vertex.particles[p].pdg_code for p in t.leg_order) == inter.particles
                assert dict(inter.orders) == {k: v for k, v in model.couplings[t.coupling].order.items() if v}
                assert t.sign == 1
    # the SM limit: 60 vertices → 62 interactions (two vertices hold couplings of two order sets)
    assert len(model_interactions(sm)) == 62


def test_relabelled_structure_and_colour_mapping(eft):
    inters = model_interactions(eft)
    moved = [t for i in inters for t in i.terms if t.leg_order != tuple(range(len(t.leg_order)))]
    assert moved, "SMEFTsim's split vertices need leg mappings"
    for t in moved[:50]:
        expr = t.structure()
        original = parse_structure(t.lorentz.structure)
        assert len(expr.terms) == len(original.terms)
        mapping = t.leg_mapping()
        for a, b in zip(original.terms, expr.terms):
            for fa, fb in zip(a.factors, b.factors):
                for x, y, kind in zip(fa.args, fb.args, fa.kinds):
                    assert y == (mapping[x] if (kind == "leg" or x > 0) else x)


def test_four_fermion_chains_of_both_smeftsim_models(eft, top_eft):
    """Every fermion structure of both models chains row → column with a fermion on the row leg; the
    four-fermion ones either as ALOHA reads them ((2,1),(4,3)) or crossed ((2,3),(4,1))."""
    found = {}
    for path, model in ((U35, eft), (TOP, top_eft)):
        kinds = Counter()
        for v in model.vertices:
            fermions = [i for i, p in enumerate(v.particles) if p.is_fermion]
            if len(fermions) != 4:
                continue
            for lor in v.lorentz:
                chains = spinor_chains(parse_structure(lor.structure))
                pairs = tuple(sorted((r - 1, c - 1) for r, c in chains))
                f = fermions
                if pairs == aloha_pairs(v):
                    kinds["aloha"] += 1
                else:
                    assert pairs == tuple(sorted([(f[1], f[2]), (f[3], f[0])])), (v.name, lor.structure)
                    kinds["crossed"] += 1
                for r, c in pairs:
                    assert v.particles[r].pdg_code > 0 > v.particles[c].pdg_code
        found[path.name] = kinds
    assert found["SMEFTsim_U35_MwScheme_UFO"] == {"aloha": 304, "crossed": 181}
    assert found["SMEFTsim_top_MwScheme_UFO"] == {"aloha": 347, "crossed": 104}


def test_crossed_chain_vertex_pairs(eft):
    """V_834 [mu+, e-, e+, mu-] chains e- → e+ and mu- → mu+: fermion pairs (1, 2), (3, 0)."""
    inters = model_interactions(eft)
    hits = [i for i in inters if i.particles == (-13, 11, -11, 13) and ("NPcle", 1) in i.orders]
    assert len(hits) == 1 and hits[0].fermion_pairs == ((1, 2), (3, 0))
    cll1 = [i for i in inters if sorted(i.particles) == [-13, -11, 11, 13] and ("NPcll1", 1) in i.orders]
    assert [i.fermion_pairs for i in cll1] == [((1, 0), (3, 2))]  # cll1 is written positionally: (ē γ μ)(μ̄ γ e)


def test_spinor_chain_errors():
    with pytest.raises(ModelFormatError, match="chain the fermion legs differently"):
        spinor_chains(parse_structure("ProjM(2,1)*ProjM(4,3) + ProjM(2,3)*ProjM(4,1)"), where="V_x")
    with pytest.raises(ModelFormatError, match="charge-conjugation"):
        spinor_chains(parse_structure("C(2,1)"))
    assert spinor_chains(parse_structure("Gamma(3,2,-1)*ProjM(-1,1)")) == ((2, 1),)


# ---- counts against MadGraph -----------------------------------------------------------------------
@pytest.mark.parametrize("text,kw,count", [
    ("e+ e- > mu+ mu-", {}, 2),
    ("u u~ > g g", {}, 3),
    ("g g > g g", {}, 4),
    ("g g > g g g", {}, 25),
    ("u d~ > w+ z", {"orders": {"NP": 0}}, 3),
    ("e+ e- > w+ w-", {}, 3),
    ("u u~ > z z", {}, 2),
    ("u u~ > d d~ QCD=2 QED=0", {}, 1),
    ("u u~ > d d~", {}, 1),  # default: minimal WEIGHTED keeps the gluon
    ("u u~ > d d~ QED=2", {}, 4),  # a non-EFT constraint: no minimisation (s: g, a, Z; t: W)
    ("e+ e- > e+ e-", {}, 4),
    ("u u > u u", {}, 2),
])
def test_sm_counts(sm, text, kw, count):
    ds = diagrams(sm, text, **kw)
    assert len(ds.diagrams) == count
    check_structure(ds)


def test_top_model_gg_ttbar(top_sm):
    ds = diagrams(top_sm, "g g > t t~ QED=0")
    assert len(ds.diagrams) == 3 and {d.orders for d in ds.diagrams} == {(("QCD", 2),)}
    check_structure(ds)
    assert sorted(p for d in ds.diagrams for p, _ in d.propagators()) == sorted([21, 6, 6]) or \
        sorted(abs(p) for d in ds.diagrams for p, _ in d.propagators()) == [6, 6, 21]


def test_ee_mumu_with_eft_terms(eft):
    """NP ≤ 1 in U35 (restrict_massless): SM a, Z (2); the a and Z couplings of e and μ each shifted by
    the input-scheme and vertex operators — photon: cHl3, cll1, cHDD, cHWB on either side (8); Z: cHe,
    cHl1, cHl3, cll1, cHDD, cHWB on either side (12); contact terms on V_834 [μ⁺, e⁻, e⁺, μ⁻]: cle, cee,
    cll (crossed chains e⁻ → e⁺, μ⁻ → μ⁺), cll1 (positional chains, (ē γ μ)(μ̄ γ e)) (4).
    Every SMEFTsim coupling carries its operator's order (NPcXX), so each is its own interaction."""
    ds = diagrams(eft, "e+ e- > mu+ mu- NP<=1")
    check_structure(ds)
    assert len(ds.diagrams) == 26
    by = Counter()
    for d in ds.diagrams:
        props = d.propagators()
        kind = "contact" if not props else {22: "a", 23: "Z"}[props[0][0]]
        by[(kind, d.order("NP"))] += 1
    assert by == {("a", 0): 1, ("Z", 0): 1, ("a", 1): 8, ("Z", 1): 12, ("contact", 1): 4}
    ops = sorted(k for d in ds.diagrams if not d.propagators() for k, _ in d.orders if k.startswith("NPc"))
    assert ops == ["NPcee", "NPcle", "NPcll", "NPcll1"]
    # squared constraints act on pairs: NP^2==2 keeps only the NP = 1 diagrams; NP^2<=1 keeps all
    assert len(diagrams(eft, "e+ e- > mu+ mu- NP^2==2")) == 24
    assert len(diagrams(eft, "e+ e- > mu+ mu- NP^2<=1")) == 26
    assert len(diagrams(eft, "e+ e- > mu+ mu- NP=0")) == 2


# ---- fermion signs --------------------------------------------------------------------------------
def test_fermion_signs(sm):
    ee = diagrams(sm, "e+ e- > e+ e-")
    s = [d.sign for d in ee.diagrams if any(legs == (0, 1) for _, legs in d.propagators())]
    t = [d.sign for d in ee.diagrams if not any(legs == (0, 1) for _, legs in d.propagators())]
    assert len(s) == len(t) == 2 and len(set(s)) == 1 and len(set(t)) == 1 and s[0] == -t[0]
    uu = diagrams(sm, "u u > u u")
    assert sorted(d.sign for d in uu.diagrams) == [-1, 1]
    assert len({d.sign for d in diagrams(sm, "u u~ > g g").diagrams}) == 1
    mm = diagrams(sm, "e+ e- > mu+ mu-")
    assert len({d.sign for d in mm.diagrams}) == 1
    # the worked example of the module docstring: s-channel chains (0,1),(3,2) → −1
    assert s[0] == -1


def _random_spinors(seed, n=4):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(5, 4, dtype=torch.complex128, generator=g) for _ in range(n)]


def test_fermion_sign_is_consistent_with_fierz(eft):
    """cll and cll1 both give (ē γ P_L e)(μ̄ γ P_L μ) with coefficient 2c/Λ² (for anticommuting fields
    (ē γ P_L μ)(μ̄ γ P_L e) = +(ē γ P_L e)(μ̄ γ P_L μ)).  SMEFTsim writes the cll term with crossed chains
    and the cll1 term with positional chains, so their c-number structures differ by the Fierz sign −1;
    sign × structure must agree for arbitrary spinors.  (Reading fermion pairs by position, as MadGraph
    does, would give them opposite signs.)"""
    ds = diagrams(eft, "e+ e- > mu+ mu- NP<=1")
    contact = {}
    for d in ds.diagrams:
        if d.propagators():
            continue
        op = [k for k, _ in d.orders if k.startswith("NPc")][0]
        inter = ds.interactions[d.interaction]
        if op in ("NPcll", "NPcll1"):
            assert len(inter.terms) == 1
            contact[op] = (d, inter, inter.terms[0])
    assert set(contact) == {"NPcll", "NPcll1"}
    assert contact["NPcll"][2].lorentz.structure == "Gamma(-1,2,-2)*Gamma(-1,4,-3)*ProjM(-3,1)*ProjM(-2,3)"
    assert contact["NPcll1"][2].lorentz.structure == "Gamma(-1,2,-2)*Gamma(-1,4,-3)*ProjM(-3,3)*ProjM(-2,1)"
    assert contact["NPcll"][0].sign == -contact["NPcll1"][0].sign
    psi = _random_spinors(7)
    values = {}
    for op, (d, inter, term) in contact.items():
        # the wavefunction of each canonical leg: external leg attached there
        wf = [psi[line.legs[0]] for line in d.lines]
        compiled = compile_lorentz(term.structure(), inter.spins)
        values[op] = d.sign * compiled.amplitude(wf)
    assert torch.allclose(values["NPcll"], values["NPcll1"], rtol=1e-12, atol=0)
    assert not torch.allclose(values["NPcll"], -values["NPcll1"], rtol=1e-6, atol=0)


# ---- exclusions, s-channels, decay chains ----------------------------------------------------------
def test_exclusions_and_s_channels(sm):
    assert [p for d in diagrams(sm, "e+ e- > mu+ mu- / z").diagrams for p, _ in d.propagators()] == [22]
    assert [p for d in diagrams(sm, "e+ e- > mu+ mu- $$ a").diagrams for p, _ in d.propagators()] == [23]
    assert len(diagrams(sm, "e+ e- > mu+ mu- $ a")) == 2  # $: kept, vetoed on shell by the phase space
    assert len(diagrams(sm, "e+ e- > e+ e- $$ a")) == 3  # the t-channel photon is not an s-channel
    assert [p for d in diagrams(sm, "e+ e- > z > mu+ mu-").diagrams for p, _ in d.propagators()] == [23]
    with pytest.raises(InvalidInputError, match="e\\+ e- > mu\\+ mu-"):
        diagrams(sm, "e+ e- > mu+ mu- / a z")


def test_decay_chain(sm):
    spec = parse_process("p p > w+ z, w+ > e+ ve", sm)
    sub = [s for s in spec.subprocesses if s.initial in ((2, -1), (-1, 2))][0]
    ds = diagrams_for(sm, sub, spec)
    check_structure(ds)
    assert len(ds.diagrams) == 3
    assert ds.external == (-2, 1, -11, 12, 23)
    for d in ds.diagrams:  # the W+ flows into the subtree of legs 2, 3: its top vertex emits a W− label
        assert (-24, (2, 3)) in d.propagators()
    full = generate_diagrams(sm, ds.external, orders={"NP": 0})
    assert len(full) > len(ds)  # without the chain, Z radiated off the leptons too


def test_required_s_channel_direction_and_root_leg(sm):
    assert len(diagrams(sm, "u d~ > w+ > e+ ve")) == 1
    with pytest.raises(InvalidInputError, match="no tree-level diagram"):
        diagrams(sm, "u d~ > w- > e+ ve")
    # the decayed W+ holds the last leg: the required line is the complementary subtree, W+ out of it
    spec = parse_process("p p > z w+, w+ > e+ ve", sm)
    sub = [s for s in spec.subprocesses if s.initial == (2, -1)][0]
    ds = diagrams_for(sm, sub, spec)
    check_structure(ds)
    assert len(ds) == 3 and all((24, (0, 1, 2)) in d.propagators() for d in ds.diagrams)


def test_lines_shared_between_diagrams(sm):
    ds = diagrams(sm, "g g > g g g")
    total = sum(len(d.internal_lines()) for d in ds.diagrams)
    assert len(ds.lines()) < total
    assert len(set(ds.lines())) == len(ds.lines())
    a = ds.lines()[0]
    b = Line(a.legs, a.particle, a.interaction, a.children, a.parent_label)
    assert a == b and hash(a) == hash(b)


def test_weighted_rule_keeps_eft_dressing(eft):
    """With only NP constrained, WEIGHTED is minimised over the non-EFT orders per EFT order, never
    below the SM minimum: the cG vertices (NP=1, QED=2) of g g → g g g stay, and in u d → u d h the
    SM and EFT vector-boson fusion diagrams stay next to the lighter cHG gluon exchange."""
    ggg = diagrams(eft, "g g > g g g NP<=1")
    check_structure(ggg)
    assert sum(d.order("NP") == 0 for d in ggg.diagrams) == 25
    assert {k for d in ggg.diagrams for k, _ in d.orders if k.startswith("NPc")} == {"NPcG"}
    assert max(len(ggg.interactions[d.interaction].particles) for d in ggg.diagrams) == 5  # cG's 5-gluon vertex
    vbf = diagrams(eft, "u d > u d h NP<=1")
    check_structure(vbf)
    sm_props = sorted(sorted(abs(p) for p, _ in d.propagators()) for d in vbf.diagrams if d.order("NP") == 0)
    assert sm_props == [[23, 23], [24, 24]]
    np1 = [d for d in vbf.diagrams if d.order("NP") == 1]
    assert any(21 in [p for p, _ in d.propagators()] for d in np1)
    assert any({k for k, _ in d.orders} >= {"NPcHW"} for d in np1)
    # a non-EFT constraint means exactly what it says: nothing minimised, so the loop-induced SMHLOOP
    # H γ γ / H Z γ vertices enter with photon exchange (and the gluon diagram leaves)
    qcd0 = diagrams(eft, "u d > u d h QCD=0 NP<=1")
    assert any(d.order("SMHLOOP") == 1 and 22 in [p for p, _ in d.propagators()] for d in qcd0.diagrams)
    assert not any(21 in [p for p, _ in d.propagators()] for d in qcd0.diagrams)


def test_top_eft_default_and_explicit_orders(top_eft):
    top = top_eft
    default = diagrams(top, "g g > t t~ NP<=1")
    ops = Counter(tuple(k for k, _ in d.orders if k.startswith("NPc")) for d in default.diagrams)
    assert ops == {(): 3, ("NPctG",): 6}  # ctG: either ttg vertex of t and u (4), the s-channel ttg (1), the ttgg contact (1)
    explicit = diagrams(top, "g g > t t~ NP<=1 QED<=2 SMHLOOP=0")
    ops = Counter(tuple(k for k, _ in d.orders if k.startswith("NPc")) for d in explicit.diagrams)
    assert ops == {(): 3, ("NPctG",): 6, ("NPcG",): 1, ("NPcHG",): 1}
    check_structure(explicit)


def test_identical_factor(sm):
    assert diagrams(sm, "u u~ > g g g").identical_factor == 6
    assert diagrams(sm, "u u~ > z z").identical_factor == 2
    assert diagrams(sm, "e+ e- > mu+ mu-").identical_factor == 1


def test_two_to_four_with_eft_is_fast(eft):
    t0 = time.perf_counter()
    ds = diagrams(eft, "u d~ > e+ ve mu+ mu- NP<=1")
    elapsed = time.perf_counter() - t0
    check_structure(ds)
    assert len(ds) > 100 and elapsed < 10.0


# ---- errors ---------------------------------------------------------------------------------------
def test_bad_inputs(sm):
    with pytest.raises(InvalidInputError, match="charge"):
        generate_diagrams(sm, (-11, -11, 22))
    with pytest.raises(UnknownParameterError):
        generate_diagrams(sm, (-11, 11, 4242))
    with pytest.raises(InvalidInputError, match="e\\+ e- > g g.*no tree-level diagram"):
        diagrams(sm, "e+ e- > g g")
    with pytest.raises(UnknownParameterError):
        generate_diagrams(sm, (-11, 11, 22), orders=[OrderConstraint("QXD", "<=", 1)])
    with pytest.raises(InvalidInputError, match="n_initial"):
        generate_diagrams(sm, (-11, 11, 22), n_initial=3)
    with pytest.raises(InvalidInputError, match="at least 3"):
        generate_diagrams(sm, (-11, 11))


def test_zero_couplings_dropped_and_default_zero_coefficients_kept(tmp_path):
    toy = tmp_path / "toy"
    shutil.copytree(TOY, toy)
    with open(toy / "couplings.py", "a") as f:
        f.write("\nGC_6 = Coupling(name = 'GC_6', value = '0*ee', order = {'QED':1})\n")
    with open(toy / "vertices.py", "a") as f:
        f.write("\nV_7 = Vertex(name = 'V_7', particles = [ P.e__plus__, P.e__minus__, P.a ], color = [ '1' ],\n"
                "             lorentz = [ L.FFV1 ], couplings = {(0,0):C.GC_6})\n")
    model = load_ufo(toy)  # cX = cY = 0 by default, but they can vary: GC_2, GC_3 are kept
    inters = model_interactions(model)
    couplings = {i.particles: sorted(i.couplings) for i in inters if i.orders == (("QED", 1),)}
    assert couplings == {(-11, 11, 22): ["GC_1", "GC_5"], (-2, 2, 22): ["GC_4"]}
    assert [sorted(i.couplings) for i in inters if ("NP", 1) in i.orders] == [["GC_2", "GC_3"]]
    restricted = load_ufo(toy, restriction="restrict_massless.dat")  # Me = 0, cY = 0 fixed: GC_5, GC_3 go
    assert sorted(c for i in model_interactions(restricted) for c in i.couplings) == ["GC_1", "GC_2", "GC_4"]


def test_majorana_is_refused(tmp_path):
    toy = tmp_path / "toy"
    shutil.copytree(TOY, toy)
    with open(toy / "particles.py", "a") as f:
        f.write("\nn1 = Particle(pdg_code = 1000022, name = 'n1', antiname = 'n1', spin = 2, color = 1, mass = Param.ZERO,\n"
                "              width = Param.ZERO, texname = 'n1', antitexname = 'n1', charge = 0)\n")
    with open(toy / "vertices.py", "a") as f:
        f.write("\nV_5 = Vertex(name = 'V_5', particles = [ P.e__plus__, P.n1, P.a ], color = [ '1' ],\n"
                "             lorentz = [ L.FFV1 ], couplings = {(0,0):C.GC_1})\n"
                "\nV_6 = Vertex(name = 'V_6', particles = [ P.n1, P.e__minus__, P.a ], color = [ '1' ],\n"
                "             lorentz = [ L.FFV1 ], couplings = {(0,0):C.GC_1})\n")
    model = load_ufo(toy)
    with pytest.raises(UnsupportedProcessError, match="Majorana"):
        generate_diagrams(model, (1000022, 1000022, 22))
    with pytest.raises(UnsupportedProcessError, match="Majorana"):
        generate_diagrams(model, (-11, 11, 22, 22))  # the t-channel n1
    assert len(generate_diagrams(model, (-11, 11, 22, 22), excluded=[1000022])) > 0
