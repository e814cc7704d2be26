"""Routers: which replica of a fleet serves each request (the contract is in base.py)."""
