"""Merging: in memory, streaming, in parallel; what the commands do, without the command line.

Builds on :mod:`vwmerge.format`, :mod:`vwmerge.contract` and :mod:`vwmerge.model`.
"""
