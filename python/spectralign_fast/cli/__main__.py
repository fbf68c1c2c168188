"""``python -m spectralign_fast.cli``: the same as the ``spectralign-fast`` command."""
import sys

from .main import main

sys.exit(main())
