"""The plugin contract: the hooks, the reduction stack, and every type a hook receives.

Builds on :mod:`vwmerge.format` only. Plugin authors import these names from
:mod:`vwmerge.plugin`, not from here.
"""
