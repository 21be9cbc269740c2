"""The package version, in a leaf module that imports nothing (so any module can record it without a cycle).

Keep it equal to ``version`` in pyproject.toml (tests/test_versions.py checks).
"""

__version__ = "0.1.0"
