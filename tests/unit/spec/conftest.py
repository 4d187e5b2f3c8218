from tests.unit.spec.helpers import repo

__all__ = ["repo"]
