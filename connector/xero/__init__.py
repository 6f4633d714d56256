"""Talking to Xero: the only package that makes HTTP requests to it."""
