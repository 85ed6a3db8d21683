"""Events/s of `Engine.process` for the default Clay mapping, against its anchor.

The anchor (the peer) is a plain handler with the same six fields precompiled as jsonpath-ng
expressions: parse the body, find each field. The engine does that plus event-type routing,
validation against Knock's limits and building the outcome, and must still be >= 2x the peer.
Both are measured in this one run, on the same ~1 KB Clay bodies.

    .venv/bin/python bench/engine.py [--events 20000]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

from jsonpath_ng import parse as jsonpath_parse

from workbench.config import load_config
from workbench.engine import Engine, SourceEvent
from workbench.sinks import DryRunSink

ROOT = Path(__file__).resolve().parents[1]
FIELDS = {
    "id": "$.email",
    "name": "$.full_name",
    "email": "$.email",
    "phone_number": "$.phone_number",
    "avatar": "$.avatar_url",
    "properties": "$",
}


def clay_body(i: int, rng: random.Random) -> bytes:
    """A lead row as Clay's HTTP API column sends it: strings everywhere, some JSON objects, ~1 KB."""
    first, last = (
        rng.choice(["Jane", "Omar", "Li", "Ana", "Sven"]),
        rng.choice(["Doe", "Haddad", "Wei", "Lopez"]),
    )
    domain = rng.choice(["acme.com", "globex.io", "initech.co", "umbrella.org"])
    body = {
        "event": "lead.enriched",
        "email": f"{first.lower()}.{last.lower()}{i}@{domain}",
        "full_name": f"{first} {last}",
        "phone_number": f"+1 415 555 {i % 10000:04d}",
        "avatar_url": f"https://cdn.example.com/avatars/{i}.png",
        "job_title": rng.choice(["VP Sales", "Head of Growth", "RevOps Lead", "CTO"]),
        "company_name": domain.split(".")[0].title(),
        "company_domain": domain,
        "linkedin_url": f"https://www.linkedin.com/in/{first.lower()}-{last.lower()}-{i}",
        "icp_score": str(rng.randint(10, 99)),
        "employee_count": str(rng.randint(5, 5000)),
        "industry": rng.choice(["Software", "Fintech", "Logistics"]),
        "location": "San Francisco, California, United States",
        "company_enrichment": {
            "founded": "2012",
            "funding": "Series B",
            "hq": "SF",
            "tech": ["Salesforce", "Segment"],
        },
        "summary": "Enriched by Clay.\nLeads the revenue team; previously at a logistics start-up.",
        "find_work_email_2": "",
        "seniority": "vp",
        "twitter_url": "",
        "headline": f"{first} {last} | Revenue leader at {domain.split('.')[0].title()} | Ex-founder",
        "company_description": "B2B software for teams that move goods; customers in 30 countries, offices in SF and Berlin.",
        "clay_row_id": f"row_{i:06d}",
    }
    return json.dumps(body).encode()


def run_engine(bodies) -> float:
    engine = Engine(load_config(ROOT / "mappings" / "clay.json"), "development", DryRunSink())
    headers = {"content-type": "application/json", "x-clay-table-id": "t_1"}
    start = time.perf_counter()
    for raw in bodies:
        outcome = engine.process(SourceEvent(raw, headers))
        assert outcome.status == "processed"
    return len(bodies) / (time.perf_counter() - start)


def run_peer(bodies) -> float:
    compiled = {name: jsonpath_parse(expr) for name, expr in FIELDS.items()}
    start = time.perf_counter()
    for raw in bodies:
        body = json.loads(raw)
        payload = {}
        for name, expr in compiled.items():
            found = expr.find(body)
            if found:
                payload[name] = found[0].value
        assert payload["id"]
    return len(bodies) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(7)
    bodies = [clay_body(i, rng) for i in range(args.events)]
    mean_size = sum(map(len, bodies)) / len(bodies)
    run_engine(bodies[:500])  # warm-up
    run_peer(bodies[:500])
    # Interleaved rounds, best of each: both sides see the same machine load.
    engine_rate = peer_rate = 0.0
    for _ in range(args.rounds):
        engine_rate = max(engine_rate, run_engine(bodies))
        peer_rate = max(peer_rate, run_peer(bodies))
    ratio = engine_rate / peer_rate
    print(f"bodies: {len(bodies)} x {mean_size:.0f} bytes (default Clay mapping, dry-run sink)")
    print(f"engine.process: {engine_rate:,.0f} events/s")
    print(f"peer (json.loads + 6 precompiled jsonpath-ng finds): {peer_rate:,.0f} events/s")
    print(f"ratio engine/peer: {ratio:.2f}x (target >= 2.0x) {'OK' if ratio >= 2 else 'BELOW TARGET'}")


if __name__ == "__main__":
    main()
