"""Type stubs for the private C++ extension ``spectralign_fast._core`` (use the public classes instead).

The extension is one compiled module with one submodule per area; this folder holds only stubs, so
imports still find the compiled ``_core`` beside it. ``dev`` exists only in builds made with
``-DSPECTRALIGN_DEV_TOOLS=ON``.
"""
from . import config as config
from . import dev as dev
from . import image as image
from . import match as match
from . import place as place
from . import register as register
from . import render as render
from . import sample as sample
from . import stackreg as stackreg
