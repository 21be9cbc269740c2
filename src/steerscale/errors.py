"""The one exception type users see: a clear, one-line message naming what was wrong."""


class SteerscaleError(Exception):
    """Bad input or an impossible request; the CLI prints the message and exits 2."""
