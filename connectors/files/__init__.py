"""Streaming readers for dropped files and archives."""
