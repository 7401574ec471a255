"""schwarm_stream: the streaming layer between LLM provider streams and agent loops."""
from ._version import __version__

__all__ = ["__version__"]
