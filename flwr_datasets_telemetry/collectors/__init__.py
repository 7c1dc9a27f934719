"""The built-in collectors, each a plugin registered under its own name."""
