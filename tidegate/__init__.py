"""Tidegate command line and wiring of connectors to runtimes."""
