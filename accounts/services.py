"""Writes and etcd calls of the accounts app."""
