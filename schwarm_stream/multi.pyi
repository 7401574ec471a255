"""The older name of :mod:`schwarm_stream.compose.multi`, for type checkers; at run time it is the same module."""

from .compose.multi import *  # noqa: F403  (the whole public surface, by its __all__)
from .compose.multi import __all__ as __all__
