"""The older name of :mod:`schwarm_stream.compose.callbacks`, for type checkers; at run time it is the same module."""

from .compose.callbacks import *  # noqa: F403  (the whole public surface, by its __all__)
from .compose.callbacks import __all__ as __all__
