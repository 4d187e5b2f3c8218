"""The moorage command line."""
