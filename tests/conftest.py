"""Shared fixtures. Engine tests need nothing; server fixtures live in server_fixture.py."""
