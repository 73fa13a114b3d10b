"""Reads of the kvmanager app."""
