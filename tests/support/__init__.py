"""Helpers only this project's own tests (and benchmarks) use; not part of the installed package.

- :mod:`tests.support.corpus`: the recorded stream corpus, full (``../shared/corpus``) or the subset
  shipped in ``tests/data/corpus/``;
- :mod:`tests.support.corpus_subset`: which recordings the subset holds, and the script that copies them;
- :mod:`tests.support.oracle`: what the official SDKs' own accumulators make of a raw SSE body;
- :mod:`tests.support.faults`: golden streams, the oracle comparison and the "nothing lost" check for
  fault-injection tests.

The user-facing testing kit (scripted sources, the provider server, the offline provider, the pytest
plugin) stays in :mod:`schwarm_stream.testing`.  Imported as ``tests.support`` (``tests`` is a namespace
package): the repository root must be on ``sys.path``, as it is with the editable install or
``python -m pytest`` from the root.
"""
