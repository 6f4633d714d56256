"""Tests of the Xero -> Stampli connector."""
