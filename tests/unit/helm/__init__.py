"""Unit tests of moorage.helm."""
