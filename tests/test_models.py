"""Every shipped model loads, passes its own test vectors and matches its model card."""

import hashlib
import json
import warnings
from pathlib import Path

import pytest

pytest.importorskip("onnxruntime")

from sbihep.errors import IntegrityWarning  # noqa: E402
from sbihep.surrogates.loader import SurrogateLikelihood  # noqa: E402

MODELS = Path(__file__).resolve().parents[1] / "models"
CARDS = sorted(MODELS.glob("*.card.json"))


def test_every_onnx_file_has_a_card():
    assert {p.name for p in MODELS.glob("*.onnx")} == {json.loads(c.read_text())["model"] for c in CARDS}


@pytest.mark.parametrize("card_path", CARDS, ids=lambda p: p.stem)
def test_model_matches_its_card(card_path):
    card = json.loads(card_path.read_text())
    path = MODELS / card["model"]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == card["sha256"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", IntegrityWarning)  # shipped models carry their integrity record
        surrogate = SurrogateLikelihood(path, out_of_bounds="raise")  # verifies the record and the stored test vectors
    assert [i["name"] for i in card["inputs"]] == surrogate.input_names
    assert [i["valid_range"] for i in card["inputs"]] == surrogate.bounds.tolist()
    limit = card["upper_limit_95cl_cls"]
    assert surrogate.upper_limit(direction=limit.get("direction")) == pytest.approx(limit["surrogate"], rel=1e-3)
