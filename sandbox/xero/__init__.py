"""The bundled Xero sandbox: a small HTTP server that behaves like Xero for every call the connector makes.

See README.md in this folder for what it serves, how to start it and the choices made where Xero's
documentation is unclear (kept in code in `choices.py`).
"""

from sandbox.xero.sandbox import XeroSandbox

__all__ = ["XeroSandbox"]
