"""The older name of :mod:`schwarm_stream.compose.agent`, for type checkers; at run time it is the same module."""

from .compose.agent import *  # noqa: F403  (the whole public surface, by its __all__)
from .compose.agent import __all__ as __all__
