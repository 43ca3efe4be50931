"""Fake external services, spoken at the wire on 127.0.0.1, for the tests."""
