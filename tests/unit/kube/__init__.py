"""Unit tests of moorage.kube."""
