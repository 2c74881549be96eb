"""Connectors turn uploads (files, archives, API calls) into one raw record per line."""
