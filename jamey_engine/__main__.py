"""``python -m jamey_engine`` is the same program as ``jamey``."""

from jamey_engine.cli import main

if __name__ == "__main__":
    main()
