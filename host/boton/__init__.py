"""Botón Seguro host tools: CLI, virtual device (rig) and registry."""
__version__ = "0.1.0"
