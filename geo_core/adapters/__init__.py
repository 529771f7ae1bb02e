"""Adapters to external services, each written against the provider's documented HTTP API.

Adapters know nothing of Flask or of our domain models: they take settings and plain arguments, return small
dataclasses and raise `DomainError`s with user-safe messages. Tests drive them against a stub server on 127.0.0.1.
"""
