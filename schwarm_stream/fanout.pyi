"""The older name of :mod:`schwarm_stream.compose.fanout`, for type checkers; at run time it is the same module."""

from .compose.fanout import *  # noqa: F403  (the whole public surface, by its __all__)
from .compose.fanout import __all__ as __all__
