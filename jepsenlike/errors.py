"""Errors, by who is at fault.

Every message names the bad input and, where there is one, the fix.

* :class:`ConfigError` -- the user's input (flags, config file, plugin names).
* :class:`HistoryError` -- a history file that is not well formed; the message
  starts with ``file:line:``.
* :class:`PluginError` -- a plugin that does not load or does not fit its
  interface; names the plugin and its distribution.
* :class:`HarnessBug` -- our fault; please report it.
"""

from __future__ import annotations


class JepsenlikeError(Exception):
    """Root of the errors this toolkit raises on purpose."""


class ConfigError(JepsenlikeError, ValueError):
    """Bad user input: a flag, a config file entry, a model or plugin name."""


class HistoryError(JepsenlikeError, ValueError):
    """A history that cannot be read: the message starts with ``file:line:``."""


class PluginError(JepsenlikeError):
    """A plugin failed to load or does not fit its interface."""


class HarnessBug(JepsenlikeError):
    """An internal invariant broke: a bug in jepsenlike, please report it."""
