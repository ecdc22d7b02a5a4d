"""What the test modules share: trained models, configuration tables, VW helpers and checks.

Test modules import from here, never from each other or from ``conftest`` (which holds only
fixtures). ``tests/`` is on ``sys.path`` through ``pythonpath`` in pyproject.toml.
"""
