"""Tidegate stream processing: the pure rule core and the runtimes that call it."""
