"""Reads of the ops app."""
