"""``python -m schwarm_stream`` and the ``schwarm-stream`` script."""

from __future__ import annotations

import sys


def main() -> None:
    """Run the command line; when its extra is not installed, say which one in a line (exit 2)."""
    from schwarm_stream import MissingDependency

    try:
        from schwarm_stream.cli import main as cli_main
    except MissingDependency as exc:
        print(f"schwarm-stream: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    cli_main()


if __name__ == "__main__":
    main()
