"""Subcommands of the jepsenlike CLI, one module each."""
