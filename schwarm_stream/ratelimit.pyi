"""The older name of :mod:`schwarm_stream.compose.ratelimit`, for type checkers; at run time it is the same module."""

from .compose.ratelimit import *  # noqa: F403  (the whole public surface, by its __all__)
from .compose.ratelimit import __all__ as __all__
