"""``python -m vwmerge``: the same command line as the ``vwmerge`` script."""

from .cli.entry import main

if __name__ == "__main__":
    main()
