"""The VW model file format: bytes in and out, the header, options, hashing and weight rows.

Imports nothing from the other layers (only :mod:`vwmerge.errors`).
"""
