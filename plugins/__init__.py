"""vwmerge's built-in reduction plugins. Each module is registered through the ``vwmerge``
entry-point group in pyproject.toml, exactly as a third-party plugin would be."""
