"""Resolver: raw payloads -> canonical identity records -> link decisions."""
