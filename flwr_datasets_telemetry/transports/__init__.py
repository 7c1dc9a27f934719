"""The built-in transport, a plugin registered under the name ``http``."""
