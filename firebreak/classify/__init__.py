"""Scorers for what no bank holds yet: models, gunfire-like sounds, on-screen text; trained heads."""
