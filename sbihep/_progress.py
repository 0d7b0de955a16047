"""Progress bars that suit where they run: widgets in a Jupyter kernel that has ipywidgets, text elsewhere.

``tqdm.auto`` picks the widget bar in any Jupyter kernel and, when ipywidgets is missing, prints
"IProgress not found. Please update jupyter and ipywidgets." before falling back to text.  Here the
widget bar is used only when ipywidgets can be imported (``pip install sbihep[notebook]``); otherwise
the plain text bar, silently.  The kernel is detected as tqdm does (``ipykernel.zmqshell`` imported,
not a Qt console or Spyder), without importing IPython in plain scripts.
"""

from __future__ import annotations

import os
import sys

__all__ = ["tqdm", "tqdm_class"]


def _in_notebook_kernel() -> bool:
    if "ipykernel.zmqshell" not in sys.modules:
        return False
    if any(k == "QT_API" or k.startswith("SPYDER") for k in os.environ):
        return False
    ipython = sys.modules.get("IPython")
    try:
        shell = type(ipython.get_ipython()).__name__.lower() if ipython is not None else ""
    except Exception:  # an IPython without get_ipython(), or one that fails outside a shell
        return False
    return "qt" not in shell and "spyder" not in shell


def tqdm_class():
    """``tqdm.notebook.tqdm`` in a Jupyter kernel with ipywidgets, else ``tqdm.std.tqdm``."""
    if _in_notebook_kernel():
        try:
            import ipywidgets  # noqa: F401

            from tqdm.notebook import tqdm as notebook_tqdm

            return notebook_tqdm
        except ImportError:
            pass
    from tqdm.std import tqdm as text_tqdm

    return text_tqdm


def tqdm(*args, **kwargs):
    """A progress bar of :func:`tqdm_class` (same arguments as ``tqdm.tqdm``)."""
    return tqdm_class()(*args, **kwargs)
