"""Unit tests of moorage.engine."""
