"""Probabilistic (Fellegi-Sunter) matching against saved Splink models."""
