"""The source engine: a `SourceEvent` in, an `Outcome` out.

One module a job: `ids` (event ids, a row's identity, content hashes), `events` (`SourceEvent`
and its normalised headers), `results` (`ActionResult`, `Outcome`, the status roll-up), `ports`
(`ActionRequest`, the `Sink` and `IdempotencyPort` interfaces) and `core` (`Plan`, `Engine`).
Everything is importable from `workbench.engine` itself.
"""

from .core import MAX_IDEMPOTENCY_KEY, Engine, Plan
from .events import BATCH_BODY, ORIGINS, SourceEvent, is_batch_entry, normalize_headers
from .ids import content_hash, new_event_id, new_event_ids, row_identity, utcnow
from .ports import ActionRequest, IdempotencyPort, Sink
from .results import EVENT_NAME_SHOWN, ActionResult, Outcome, rolled_up_status, shortened

__all__ = [
    "BATCH_BODY",
    "EVENT_NAME_SHOWN",
    "MAX_IDEMPOTENCY_KEY",
    "ORIGINS",
    "ActionRequest",
    "ActionResult",
    "Engine",
    "IdempotencyPort",
    "Outcome",
    "Plan",
    "Sink",
    "SourceEvent",
    "content_hash",
    "is_batch_entry",
    "new_event_id",
    "new_event_ids",
    "normalize_headers",
    "row_identity",
    "rolled_up_status",
    "shortened",
    "utcnow",
]
