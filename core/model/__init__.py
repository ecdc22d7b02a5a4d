"""Model files: opening and mapping them (local paths or fsspec URLs), loading and saving workspaces.

Builds on :mod:`vwmerge.format` and :mod:`vwmerge.contract`.
"""
