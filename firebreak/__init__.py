"""Firebreak: recognise known violent-extremist media and its manipulated copies."""

__version__ = "0.1.0"
