"""``python -m schwarm_stream``: the ``schwarm-stream`` command."""

from schwarm_stream.cli import main

if __name__ == "__main__":
    main()
