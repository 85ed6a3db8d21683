"""The source engine: a `SourceEvent` in, an `Outcome` out.

Parses the body, reads the event type, picks the environment's mappings for it in Knock's
execution order, checks idempotency, evaluates conditions, resolves parameters, validates
them against Knock's limits and hands each action to the injected sink. Storage and sinks
are reached only through the small `Sink` and `IdempotencyPort` interfaces below.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..actions import KEYED_ACTIONS, normalize
from ..body import parse_body
from ..config import ActionMapping, Environment, SourceConfig
from ..errors import CoercionError, InvalidBody, SinkError, TransientSinkError
from ..paths import MISSING, is_nothing
from .events import SourceEvent
from .ids import content_hash, utcnow
from .ports import ActionRequest, IdempotencyPort, Sink
from .results import ActionResult, Outcome, rolled_up_status, shortened

MAX_IDEMPOTENCY_KEY = 255


@dataclass(slots=True)
class Plan:
    """An event parsed and resolved: actions with their payloads, nothing applied yet."""

    outcome: Outcome
    context: dict[str, Any] | None = None
    todo: list[tuple[ActionMapping, ActionResult]] = field(default_factory=list)

    @property
    def final(self) -> bool:
        return self.context is None

    def keep(self, previous: Mapping[str, ActionResult]) -> list[str]:
        """Take the results in `previous` as they are, in place of the planned ones, and apply
        only the rest; returns the keys of the mappings still to apply."""
        actions = self.outcome.actions
        kept = set()
        for index, result in enumerate(actions):
            earlier = previous.get(result.mapping)
            if earlier is not None:
                actions[index] = earlier
                kept.add(id(result))
        self.todo = [(m, r) for m, r in self.todo if id(r) not in kept]
        return [m.key for m, _ in self.todo]


class Engine:
    """Processes events for one environment of one source config."""

    def __init__(
        self,
        config: SourceConfig,
        environment: str | Environment,
        sink: Sink,
        idempotency: IdempotencyPort | None = None,
        clock: Callable[[], datetime] = utcnow,
    ):
        self.config = config
        self.env = environment if isinstance(environment, Environment) else config.environment(environment)
        self.sink = sink
        self.idempotency = idempotency
        self.clock = clock

    # The three steps are public so the backfill and the designer can use them separately.

    def plan(self, event: SourceEvent, previous: Mapping[str, ActionResult] | None = None) -> Plan:
        """Parse, read the event type and resolve every mapped action (nothing is applied)."""
        try:
            body = parse_body(event.body)
        except InvalidBody as exc:
            return Plan(Outcome("invalid", None, error=str(exc)))
        context = {"body": body, "headers": event.headers}
        event_type = self.config.event_type_path.resolve(context)
        if is_nothing(event_type) or not isinstance(event_type, str):
            where = f"`{self.config.event_type_path}`"
            problem = (
                "is missing" if is_nothing(event_type) else f"is {json.dumps(event_type)[:40]}, not text"
            )
            return Plan(
                Outcome(
                    "invalid",
                    None,
                    body=body,
                    error=(
                        f'no event type: {where} {problem}; add "event": "lead.enriched" (or your event name) '
                        "to the HTTP API column body"
                    ),
                )
            )
        mappings = self.env.mappings_for(event_type)
        outcome = Outcome("processed", event_type, body=body)
        if event_type not in self.env.active_events:
            outcome.status = "no_mapping"
            outcome.error = (
                f"no active mapping for event `{shortened(event_type)}` in environment `{self.env.name}`; "
                "nothing was done (add a mapping for it to act on it)"
            )
            return Plan(outcome)
        size_hint = 6 * len(event.body) + 1024 if isinstance(event.body, (bytes, str)) else None
        plan = Plan(outcome, context)
        for mapping in mappings:
            if previous and previous.get(mapping.key) and previous[mapping.key].status == "success":
                outcome.actions.append(previous[mapping.key])
                continue
            result = self._resolve(mapping, context, size_hint)
            outcome.actions.append(result)
            if result.status == "pending":
                plan.todo.append((mapping, result))
        return plan

    def _resolve(self, mapping: ActionMapping, context, size_hint) -> ActionResult:
        result = ActionResult(mapping.action, "pending", mapping.key, params=mapping.raw.get("params"))
        if not mapping.active:
            result.status, result.result = "skipped", {"reason": "mapping is inactive"}
            return result
        for condition in mapping.when:
            verdict = condition.evaluate(context)
            if not verdict.ok:
                result.status, result.result = "skipped", {"reason": f"condition not met: {verdict.reason}"}
                return result
        payload: dict[str, Any] = {}
        errors: list[str] = []
        for name, resolve, required, spec in mapping.resolvers:
            try:
                value = resolve(context)
            except CoercionError as exc:
                errors.append(f"param `{name}`: {exc}")
                continue
            if value is MISSING or value is None or value == "":
                if required:
                    errors.append(f"param `{name}`: {spec.describe()} resolved to nothing")
                continue
            payload[name] = value
        if not errors:
            errors = normalize(mapping.action, payload, size_hint)
        result.payload = payload
        if errors:
            result.status, result.error = "failed", "; ".join(errors)
        return result

    def apply(
        self,
        plan: Plan,
        event_id: str | None = None,
        row: str | None = None,
        earlier: Mapping[str, tuple[str | None, int]] | None = None,
    ) -> Outcome:
        """Hand every resolved action to the sink and settle the outcome's status. `row`: the
        `row_identity` of a backfilled row, which the sink's idempotency keys derive from.

        `earlier`: per mapping of a replayed event, the key its trigger was last sent under while
        Knock may have run it (None after a refusal) and its attempts so far. A kept key is sent
        again, so a trigger that timed out never runs twice. After a refusal Knock ran nothing and
        kept nothing (it stores only 2xx answers under a key), so the key is free; a new one is
        taken all the same (`…:2`), so that the log tells the attempts apart."""
        earlier = earlier or {}
        for mapping, result in plan.todo:
            request = ActionRequest(mapping.action, result.payload, event_id, mapping.key, row)
            kept, attempts = earlier.get(mapping.key, (None, 0))
            keyed = mapping.action in KEYED_ACTIONS
            if keyed:  # fixed once: the sink and the log below read it (a row's key hashes its payload)
                base = kept or request.idempotency_key
                request.key = base if kept or not attempts else f"{base}:{attempts + 1}"
            try:
                result.result = self.sink.apply(request)
                result.status = "success"
            except TransientSinkError as exc:
                result.status, result.error, result.retry_after = "queued", str(exc), exc.retry_after
            except SinkError as exc:
                result.status, result.error = "failed", str(exc)
                if keyed and kept:
                    result.error += (
                        f"; Idempotency-Key {kept} is kept, as an earlier attempt under it may have "
                        "run in Knock (Knock forgets a key 24 h after its first use)"
                    )
            if keyed:
                result.request_key = kept if result.status == "failed" else request.key
        for result in plan.outcome.actions if earlier else ():  # kept by those not sent this time
            if result.request_key is None and result.status != "success":
                result.request_key = earlier.get(result.mapping, (None, 0))[0]
        plan.todo = []
        outcome = plan.outcome
        outcome.status = rolled_up_status(outcome.actions)
        return outcome

    def idempotency_key(self, body: Any, headers: Mapping[str, str]) -> tuple[str | None, str | None]:
        """(key, None) when the event has a valid key, else (None, why it is processed without one)."""
        config = self.env.idempotency
        if config is None:
            return None, None
        value = config.path.resolve({"body": body, "headers": headers})
        if config.hashed:
            if is_nothing(value):
                return (
                    None,
                    f"idempotency not applied: `{config.path}` resolved to nothing, so there is nothing to hash",
                )
            try:
                return content_hash(value), None
            except (TypeError, ValueError, RecursionError) as exc:
                return None, f"idempotency not applied: cannot hash `{config.path}` ({type(exc).__name__})"
        if is_nothing(value):
            return None, f"idempotency not applied: key path `{config.path}` resolved to nothing"
        if not isinstance(value, str):
            return None, (
                f"idempotency not applied: key at `{config.path}` must be a string, "
                f"got {type(value).__name__}"
            )
        if len(value) > MAX_IDEMPOTENCY_KEY:
            return None, (
                f"idempotency not applied: key at `{config.path}` is {len(value)} characters; "
                f"the limit is {MAX_IDEMPOTENCY_KEY}"
            )
        return value, None

    def duplicate(self, outcome: Outcome, key: str) -> Outcome:
        """The outcome of an event whose key another execution holds: no action runs."""
        window = self.env.idempotency.window.total_seconds()
        return Outcome(
            "idempotent",
            outcome.event,
            idempotency_key=key,
            body=outcome.body,
            error=f"duplicate of an event already processed with key {json.dumps(key)[:80]} "
            f"within {window / 3600:g} h; no action ran",
        )

    def process(
        self,
        event: SourceEvent,
        previous: Mapping[str, ActionResult] | None = None,
    ) -> Outcome:
        """Run one event end to end. `previous` holds earlier results of a replayed event,
        whose successful actions are kept as they are and not applied again."""
        plan = self.plan(event, previous)
        if plan.final:
            return plan.outcome
        outcome = plan.outcome
        key, note = (None, None)
        if self.env.idempotency is not None and event.origin != "replay":
            key, note = self.idempotency_key(outcome.body, event.headers)
        outcome.idempotency_key, outcome.idempotency_note = key, note
        scope = (self.config.source, self.env.name, outcome.event)
        if key is not None and self.idempotency is not None:
            window = self.env.idempotency.window.total_seconds()
            now = self.clock()
            if not self.idempotency.reserve(scope, key, now, window):
                return self.duplicate(outcome, key)
        try:
            keys = None
            if key is not None and self.idempotency is not None:
                # A row sent again after an attempt that failed: what succeeded then is carried
                # into this outcome, not run again, and a trigger Knock may have run then is sent
                # under the same Idempotency-Key.
                earlier = self.idempotency.earlier(scope, key, now, window)
                plan.keep({m: r for m, r in earlier.items() if r.status == "success"})
                keys = {
                    m: (r.request_key, 0)
                    for m, r in earlier.items()
                    if r.request_key and r.status != "success"
                }
            self.apply(plan, event.id, earlier=keys)
        except BaseException:
            if key is not None and self.idempotency is not None:
                self.idempotency.release(scope, key)
            raise
        if key is not None and self.idempotency is not None:
            # Only successful executions are remembered. A queued one keeps its key too: the retry
            # worker finishes its actions, and a row sent again meanwhile must not run them a
            # second time (one that ends failed releases it: `SourceService._remember_key`).
            if outcome.status in ("processed", "queued"):
                self.idempotency.complete(scope, key, self.clock())
            else:
                self.idempotency.release(scope, key)
        return outcome
