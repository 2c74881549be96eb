"""Telling the uploader when an upload ends: confirmation emails and signed webhooks."""
