"""Helpers that start real local servers for the tests (no mocks of the network)."""
