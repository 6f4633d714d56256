"""Simulators of the outside services the connector talks to, bundled so it can be tried and tested offline."""
