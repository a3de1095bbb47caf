"""Clients of things outside the process that the data layer talks to: `urls` (what may be
written down of an address) and `http_client` (the one HTTP client, with hard limits).
"""
