"""Errors of the devcluster, each with a message a person can act on."""


class DevclusterError(Exception):
    """A devcluster could not be started, found or stopped."""


class ComponentFailed(DevclusterError):
    """One component did not start; carries its name and the tail of its log."""

    def __init__(self, component: str, reason: str, log_tail: str) -> None:
        self.component = component
        self.reason = reason
        self.log_tail = log_tail
        tail = "\n".join("    " + line for line in log_tail.splitlines()) or "    (log is empty)"
        super().__init__(f"{component} failed to start: {reason}\n  last lines of its log:\n{tail}")
