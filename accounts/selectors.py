"""Reads of the accounts app."""
