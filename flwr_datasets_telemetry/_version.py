"""The package version, kept in one place for setup.cfg and the payload."""

__version__ = "0.1.0"
