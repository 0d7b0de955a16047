"""Notebook polish: no "IProgress not found" noise, plain reprs of results (issue 23, item 4)."""

import sys
import types
import warnings

import pytest
import torch

torch.set_num_threads(1)


def _fake_kernel(monkeypatch):
    """What tqdm sees inside a Jupyter kernel whose environment has no ipywidgets."""
    shell = type("ZMQInteractiveShell", (), {})()
    monkeypatch.setitem(sys.modules, "ipykernel.zmqshell", types.ModuleType("ipykernel.zmqshell"))
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: shell))
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # import ipywidgets → ImportError
    for name in ("tqdm.auto", "tqdm.autonotebook", "tqdm.notebook"):
        monkeypatch.delitem(sys.modules, name, raising=False)


def test_training_progress_in_a_kernel_without_ipywidgets_is_silent_text(monkeypatch):
    from sbihep.estimators.train import train

    _fake_kernel(monkeypatch)
    data = {"x": torch.linspace(-1, 1, 40)[:, None]}
    net = torch.nn.Linear(1, 1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(net, lambda m, b: (m(b["x"]) ** 2).mean(), data, epochs=2, batch_size=20, quiet=False, device="cpu")
    assert not [w for w in caught if "IProgress" in str(w.message)]  # was: tqdm.auto warned in every fit
    from tqdm.std import tqdm as text_tqdm

    from sbihep._progress import tqdm_class

    assert tqdm_class() is text_tqdm


def test_outside_a_kernel_the_text_bar_is_used():
    from tqdm.std import tqdm as text_tqdm

    from sbihep._progress import tqdm_class

    assert "ipykernel.zmqshell" not in sys.modules or pytest.skip("running inside a kernel")
    assert tqdm_class() is text_tqdm
