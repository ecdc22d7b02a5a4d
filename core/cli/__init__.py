"""The ``vwmerge`` command line: click commands, rendering, logging configuration.

The top layer: nothing below imports it. The entry point is :func:`vwmerge.cli.entry.main`.
"""
