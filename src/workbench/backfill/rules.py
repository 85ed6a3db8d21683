"""The per-row rules of a backfill as a sync: each row planned, compared with what its targets
hold, applied and written (see `runner` for the run around them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..engine import ActionResult, Outcome, Plan, SourceEvent, content_hash, rolled_up_status
from ..errors import CoercionError
from ..jsontext import json_text
from ..store.applied import forget_rows, mark_rows, remember, remember_rows, remembered
from ..targets import action_targets, row_of
from .fingerprints import row_fingerprint


@dataclass(slots=True)
class Row:
    """One export row as the per-row path carries it through a batch: its cells, then its plan,
    targets and outcome, and how it ended (`status`, `reason`: what the failures file says)."""

    number: int
    cells: list[Any]
    status: str = ""
    reason: str | None = None
    event_id: str | None = None
    plan: Plan | None = None
    outcome: Outcome | None = None
    key: str | None = None
    note: str | None = None
    identity: str | None = None  # see `targets.row_of`
    # Per planned action: (mapping, its result, its (target, memory key, payload hash) triples).
    targets: list = field(default_factory=list)
    unchanged: int = 0  # actions left out because their targets hold their payload already
    fingerprint: str | None = None  # see `fingerprints`
    remembered: str | None = None  # how the row ended when last remembered, if it still holds
    planned_failures: tuple = ()  # the actions that failed before anything was sent


class RowRules:
    """What a run does with each row of a batch against the memory: `_prepare` (its fingerprint,
    and its plan unless it is remembered), `_compare` (leave out what its targets hold already),
    `_apply` (hand the rest to the sink) and `_write` (log it, remember what it applied and how
    it ended). `Backfill` runs them batch by batch; `columnar.OrdinaryBatches` follows the same
    rules for the rows it plans in bulk. They read the run's `engine`, `scope`, `store`, `full`,
    `retrigger`, `digest`, `valid` (rows remembered under this config) and `sent` (what this
    run sent to each target)."""

    def forget_other_configs(self, conn) -> None:
        """Forget, once a run, the rows remembered under another config (this run replaces them)."""
        if self.digest is not None and not self._forgotten:
            forget_rows(conn, self.scope, self.digest)
            self._forgotten = True

    def _prepare(self, row: Row, build, event_id: str) -> None:
        row.event_id = event_id
        if self.digest is not None:
            row.fingerprint = fingerprint = row_fingerprint(row.cells, build.reads)
            row.remembered = self.valid.get(fingerprint) if fingerprint is not None else None
            if row.remembered is not None:
                return  # planned only once this run sent something before it (see `_apply`)
        self._plan_row(row, build)

    def _plan_row(self, row: Row, build) -> None:
        try:
            body = build(row.cells)
        except CoercionError as exc:
            row.status, row.reason = (
                "invalid",
                f"row {row.number}: {exc}; fix the cell in Clay or the template",
            )
            return
        if self.event_override is not None:
            body["event"] = self.event_override
        plan = self.engine.plan(SourceEvent(body, self.headers, origin="backfill"))
        row.plan = plan
        if plan.final:
            return
        outcome = plan.outcome
        if self.env.idempotency is not None:
            row.key, row.note = self.engine.idempotency_key(outcome.body, plan.context["headers"])
        if row.key is None:
            row.key = content_hash(outcome.body)
        row.identity = row_of(*self.scope, outcome.event, row.key, outcome.body)
        row.planned_failures = tuple(id(r) for r in outcome.actions if r.status == "failed")
        for mapping, result in plan.todo:
            targets = action_targets(mapping.action, result.payload, row.identity, mapping.key)
            row.targets.append((mapping, result, targets))

    def _memory(self, conn, batch: list[Row]) -> dict[str, str]:
        """{memory key: payload hash last applied} for the batch's targets."""
        return remembered(
            conn,
            self.scope,
            (k for row in batch if row.remembered is None for _, _, ts in row.targets for _, k, _ in ts),
        )

    def _compare(self, batch: list[Row], memory: dict[str, str], dry: bool = False) -> None:
        """Leave out of each row's plan the actions whose targets hold their payload already; with
        `dry`, settle each row's status as the run would (what is left is `applied`)."""
        for row in batch:
            plan = row.plan
            if plan is None or plan.final:
                if plan is not None:
                    row.outcome, row.status, row.reason = (
                        plan.outcome,
                        plan.outcome.status,
                        plan.outcome.error,
                    )
                continue
            plan.outcome.idempotency_key, plan.outcome.idempotency_note = row.key, row.note
            todo = []
            sent = self.sent
            for mapping, result, targets in row.targets:
                # A trigger runs once per row, mapping and payload, --full or not, unless retriggered.
                trigger = mapping.action == "workflows_trigger"
                resend = self.retrigger if trigger else self.full
                # Once this run sent something else to a target, what later rows send to it goes
                # again too: the target ends as the export's rows, in their order, leave it.
                cut = [(int(t[:16], 16), int(h[:16], 16)) for t, _, h in targets]
                resend = resend or any(sent.get(t, h) != h for t, h in cut)
                # A remembered row's targets hold its payloads (see `store.applied.valid_rows`).
                held = row.remembered is not None or all(memory.get(k) == h for _, k, h in targets)
                if not resend and held:
                    result.status, result.result = "skipped", {"reason": UNCHANGED}
                    row.unchanged += 1
                    continue
                todo.append((mapping, result))
                sent.update(cut)
                if dry:  # a row repeated within the export is unchanged the second time
                    memory.update((k, h) for _, k, h in targets)
            plan.todo = todo
            if dry:
                row.status = _row_status(plan.outcome.actions, applied=bool(todo), unchanged=row.unchanged)
                row.reason = failed_reason(plan.outcome)

    def _apply(self, batch: list[Row], memory: dict[str, str]) -> None:
        for row in batch:
            if row.remembered is not None and row.plan is None and not row.status:
                if not self.sent or row.remembered != "done":
                    # Nothing was sent to a target yet in this run, or the row applies none (it
                    # ended skipped, invalid, unmapped or failed before anything was sent): it
                    # ends as it last did.
                    row.status = "unchanged" if row.remembered == "done" else row.remembered
                    continue
                # It may set a target an earlier row just changed: planned, it goes again if so.
                self._plan_row(row, self._build)
            plan = row.plan
            if plan is None:
                continue
            if plan.final:
                row.outcome, row.status, row.reason = plan.outcome, plan.outcome.status, plan.outcome.error
                continue
            self._compare([row], memory)
            outcome = plan.outcome
            sent = {id(result) for _, result in plan.todo}
            # A trigger sent again on purpose takes a key of its own (its event's), which Knock has
            # not seen: under its row's key Knock would answer with the first run.
            self.engine.apply(plan, row.event_id, None if self.retrigger else row.identity)
            row.outcome = outcome
            for _, result, targets in row.targets:
                if result.status == "success" and id(result) in sent:
                    # A row repeated within the export is unchanged the second time.
                    memory.update((k, h) for _, k, h in targets)
            row.status = _row_status(outcome.actions, applied=bool(sent), unchanged=row.unchanged)
            row.reason = failed_reason(outcome)

    def _write(self, conn, batch: list[Row], now: datetime) -> None:
        source, environment = self.scope
        done, ended = [], []
        # Memory key: the fingerprint of the batch's last row that applied it or found it
        # unchanged (None: a row not remembered); a row is remembered only if it is that row for
        # each of its keys (the database forgets it when a later batch or writer takes one over).
        claims: dict[str, str | None] = {}
        for row in batch:
            # Rows counted as they last ended write nothing: those not planned, and those planned
            # again (see `_apply`) that found every target unchanged, as the bulk path leaves them.
            fresh = row.fingerprint is not None and (
                row.remembered is None or (row.plan is not None and row.status != "unchanged")
            )
            how = self._ended(row) if fresh else None
            fingerprint = row.fingerprint if how is not None else None
            keys = [
                k
                for _, result, targets in row.targets
                if result.status == "success" or (fingerprint is not None and _unchanged(result))
                for _, k, _ in targets
            ]
            claims.update(dict.fromkeys(keys, fingerprint))
            ended.append((fingerprint, how, keys))
        applied, marks, held = [], [], []
        for row, (fingerprint, how, keys) in zip(batch, ended, strict=True):
            config = None
            if how is not None and all(claims[k] == fingerprint for k in keys):
                if how == "done" and len(keys) == 1:
                    config = self.digest  # remembered on its one target (`store.applied.valid_rows`)
                else:
                    held.append((fingerprint, how))
            for _, result, targets in row.targets:
                if result.status == "success":
                    applied += [(k, h, row.event_id, fingerprint, config) for _, k, h in targets]
                elif fingerprint is not None and _unchanged(result):
                    marks += [(k, fingerprint, config) for _, k, _ in targets if claims[k] == fingerprint]
            outcome = row.outcome
            if outcome is None or row.status in ("unchanged", "skipped"):
                continue  # nothing happened to it: the export holds it, the memory what it did
            # The body as the HTTP API column would have sent it.
            event = SourceEvent(
                json_text(outcome.body), self.headers, origin="backfill", id=row.event_id, received_at=now
            )
            done.append((event, source, environment, outcome))
        self.store.record_processed(conn, done, now, remember_applied=False)
        remember(conn, self.scope, applied, now)
        if self.digest is not None:
            self.forget_other_configs(conn)
            mark_rows(conn, self.scope, marks)
            remember_rows(conn, self.scope, self.digest, held)

    @staticmethod
    def _ended(row: Row) -> str | None:
        """How a row ended, to be remembered by its fingerprint (see `fingerprints`), or None when
        that depended on more than the row: something was queued, or failed once sent."""
        if row.status in ("applied", "unchanged"):
            return "done"
        if row.status in ("skipped", "invalid", "no_mapping"):
            return row.status
        if row.status == "failed" and row.outcome is not None:
            sent_failed = any(
                r.status in ("failed", "queued") and id(r) not in row.planned_failures
                for r in row.outcome.actions
            )
            return None if sent_failed else "failed"
        return None


UNCHANGED = "unchanged: its targets hold this payload already (applied before, by a backfill or a live row)"


def _unchanged(result: ActionResult) -> bool:
    return result.status == "skipped" and (result.result or {}).get("reason") == UNCHANGED


def _row_status(actions: list[ActionResult], *, applied: bool, unchanged: int) -> str:
    """What happened to a row, one word: failed, queued, applied, unchanged or skipped."""
    statuses = {a.status for a in actions}
    if "failed" in statuses:
        return "failed"
    if "queued" in statuses:
        return "queued"
    if applied:
        return "applied"
    return "unchanged" if unchanged else "skipped"


def failed_reason(outcome: Outcome) -> str | None:
    failed = [f"{a.action}: {a.error}" for a in outcome.actions if a.status == "failed"]
    return "; ".join(failed) if failed else None


def settle(batch: list[Row], settled: dict) -> None:
    """Apply what became of actions sent in bulk to their rows' outcomes."""
    if not settled:
        return
    for row in batch:
        outcome = row.outcome
        if outcome is None or not outcome.actions:
            continue
        changed = False
        for result in outcome.actions:
            fate = settled.get((row.event_id, result.mapping))
            if fate is not None:
                result.status, result.error, result.retry_after, result.result = (
                    fate.status,
                    fate.error,
                    fate.retry_after,
                    None,
                )
                changed = True
        if changed:
            outcome.status = rolled_up_status(outcome.actions)
            row.status = _row_status(outcome.actions, applied=True, unchanged=row.unchanged)
            row.reason = failed_reason(outcome)


def identified_ids(batch: list[Row], memory: dict[str, str]) -> list[str]:
    """The users the batch may identify: not those whose identify is unchanged (the users of a
    re-run are read only when something is sent to them)."""
    ids = []
    for row in batch:
        for mapping, result, targets in row.targets:
            if mapping.action == "users_identify" and any(memory.get(k) != h for _, k, h in targets):
                ids.append(result.payload["id"])
    return ids
