"""Dedup rounds over key files: staged documents and their keys (stage), round tables (keytables), the
key rounds (decide), MinHash near dedup (near) and the select pass that applies them (select)."""
