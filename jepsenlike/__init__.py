"""jepsenlike: chaos testing and linearizability checking for distributed systems.

The public core types live in their own modules: :mod:`jepsenlike.history`
(``Op``, ``History``), :mod:`jepsenlike.checkers` (specs, ``Result``, the
linearizability search), :mod:`jepsenlike.nemesis` and :mod:`jepsenlike.models`.
"""

__version__ = "0.1.0"
