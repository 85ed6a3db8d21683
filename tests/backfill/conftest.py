import csv
import hashlib
import json
from pathlib import Path

import pytest
from sqlalchemy import text

from workbench.backfill import Backfill, CsvRows
from workbench.clay import clean_cell
from workbench.config import load_config, parse_config
from workbench.paths import MISSING
from workbench.sinks.local import LocalSink
from workbench.store import Store

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "data" / "samples"
CONFIG = ROOT / "mappings" / "clay.json"
LEADS = SAMPLES / "clay_leads_sample.csv"


def export_rows(path):
    with open(path, encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


read_csv = export_rows


def email_of(row) -> str | None:
    value = clean_cell(row["Work Email"])
    return None if value is MISSING else value


def config_with(tmp_path, **env_changes) -> Path:
    """The default config with development's settings changed; written to a file."""
    data = json.loads(CONFIG.read_text())
    data["environments"]["development"].update(env_changes)
    path = tmp_path / "clay.json"
    path.write_text(json.dumps(data))
    parse_config(data)
    return path


# lead.enriched identifies the lead and, for a high ICP score, triggers a workflow.
IDENTIFY_AND_TRIGGER = [
    {
        "event": "lead.enriched",
        "action": "users_identify",
        "params": {"id": "body.email", "name": "body.full_name", "email": "body.email", "properties": "body"},
    },
    {
        "event": "lead.enriched",
        "action": "workflows_trigger",
        "when": [{"path": "body.icp_score", "as": "number", "gte": 80}],
        "params": {"key": {"value": "new-high-intent-lead"}, "recipients": "body.email", "data": "body"},
    },
]


@pytest.fixture
def store(tmp_path):
    s = Store(f"sqlite:///{tmp_path / 'workbench.sqlite'}")
    yield s
    s.close()


def run(store, config=CONFIG, export=LEADS, env="development", **options):
    cfg = load_config(config)
    run_options = {k: options.pop(k) for k in ("failures", "limit") if k in options}
    options.setdefault("headers", None)
    job = Backfill(cfg, env, store, LocalSink(store), **options)
    return job.run(CsvRows(export), progress=False, **run_options)


def scalar(store, sql, **params):
    with store.engine.connect() as c:
        return c.execute(text(sql), params).scalar()


def rows(store, sql, **params):
    with store.engine.connect() as c:
        return [tuple(r) for r in c.execute(text(sql), params)]


def batch_entries(store) -> list[dict]:
    """The log entries standing for batches of rows applied in bulk (`backfill.columnar`)."""
    found = rows(store, "SELECT body FROM events WHERE origin = 'backfill' ORDER BY received_at, id")
    return [json.loads(body)["backfill_batch"] for (body,) in found if body.startswith('{"backfill_batch"')]


def rows_in_batches(store) -> list[int]:
    """The row numbers the batch entries point at, in order."""
    return [
        n for entry in batch_entries(store) for first, last in entry["rows"] for n in range(first, last + 1)
    ]


def processed_rows(store) -> int:
    """Rows the log shows processed: entries of their own, and those the batch entries point at."""
    own = scalar(
        store,
        "SELECT count(*) FROM events WHERE status = 'processed' AND body NOT LIKE '{\"backfill_batch\"%'",
    )
    return own + sum(entry["applied"] for entry in batch_entries(store))


def sha256_of(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
