"""Moorage: self-hostable GitOps for Kubernetes add-ons."""

__version__ = "0.1.0"
