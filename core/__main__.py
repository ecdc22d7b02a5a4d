"""``python -m vwmerge``: the same command line as the ``vwmerge`` script."""

from .cli import main

if __name__ == "__main__":
    main()
