"""One exception hierarchy for the whole project; the HTTP status lives on the class."""

from __future__ import annotations


class WorkbenchError(Exception):
    """Base of every error this project raises on purpose."""

    http_status = 500
    status = "error"

    def __init__(self, message: str, **context):
        super().__init__(message)
        self.message = message
        self.context = context

    def __str__(self) -> str:
        return self.message


def _bullets(problems: list[tuple[str, str]]) -> list[str]:
    """Each (location, message) as a line of a list."""
    return [f"  - {loc}: {msg}" if loc else f"  - {msg}" for loc, msg in problems]


class ConfigError(WorkbenchError):
    """A mapping config is invalid; `problems` lists every (location, message)."""

    http_status = 500
    status = "config_error"

    def __init__(self, problems: list[tuple[str, str]], source: str | None = None):
        self.problems = list(problems)
        self.source = source
        where = f"{source}: " if source else ""
        count = len(self.problems)
        lines = [f"{where}{count} problem{'s' if count != 1 else ''} in the mapping config:"]
        lines += _bullets(self.problems)
        super().__init__("\n".join(lines))


class SaveRefused(WorkbenchError):
    """The designer will not write a config while an error is shown; nothing was written."""

    status = "config_error"

    def __init__(self, reasons: list[str]):
        self.reasons = list(reasons)
        super().__init__("not saved, nothing was written: " + "; ".join(self.reasons))


class PathError(WorkbenchError):
    """A path expression does not parse."""

    status = "config_error"


class CoercionError(WorkbenchError):
    """A value cannot be read as the requested type."""

    status = "failed"


class VerificationError(WorkbenchError):
    """The request is not signed with one of the environment's secrets."""

    http_status = 401
    status = "rejected"


class InvalidBody(WorkbenchError):
    """The body is not a JSON object carrying an event type."""

    http_status = 400
    status = "invalid"


class IncompleteBody(WorkbenchError):
    """The connection ended before the body its Content-Length announced; nothing is stored."""

    http_status = 400
    status = "incomplete"


class SlowClient(WorkbenchError):
    """The client took too long to send its body; nothing is stored and the connection is closed."""

    http_status = 408
    status = "timeout"


class NotFound(WorkbenchError):
    http_status = 404
    status = "not_found"


class NotReplayable(WorkbenchError):
    """A log entry that stands for rows it does not hold (a batch of backfilled rows)."""

    http_status = 409
    status = "not_replayable"


class SinkError(WorkbenchError):
    """An action could not be applied by a sink."""

    status = "failed"


class TransientSinkError(SinkError):
    """Worth retrying later: timeouts, 408/409/429/5xx, the sink being unreachable."""

    status = "queued"

    def __init__(self, message: str, retry_after: float | None = None, **context):
        super().__init__(message, **context)
        self.retry_after = retry_after


class TerminalSinkError(SinkError):
    """The sink refused the action; retrying unchanged will not help."""

    status = "failed"


class StoreUnavailable(WorkbenchError):
    """The event-log database cannot be reached; nothing was done, the sender should try again."""

    http_status = 503
    status = "unavailable"
    headers = {"Retry-After": "5"}


class NotKnockCompatible(WorkbenchError):
    """A config uses what Knock's sources cannot run; `problems` lists each (location, what to do)."""

    status = "not_knock_compatible"

    def __init__(self, problems: list[tuple[str, str]], environment: str):
        self.problems = list(problems)
        self.environment = environment
        count = len(self.problems)
        lines = [
            f"environment `{environment}` cannot go to a Knock source as it is "
            f"({count} thing{'s' if count != 1 else ''} Knock's sources do not have); nothing was sent:"
        ]
        lines += _bullets(self.problems)
        super().__init__("\n".join(lines))


class KnockManagementError(WorkbenchError):
    """Knock's management API refused a request or could not be reached; the message says what to do."""

    status = "knock_error"

    def __init__(self, message: str, http_status: int | None = None, **context):
        super().__init__(message, **context)
        self.knock_status = http_status
