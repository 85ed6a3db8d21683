"""Write the synthetic Clay exports the project ships under `data/samples/` (and the big ones the
benchmarks generate): display-name headers, every cell quoted, " (2)" enrichment columns, JSON
cells, multi-line text with quotes and commas, emoji status marks, blank cells, blank emails.

    python scripts/make_samples.py [--out data/samples]
    python scripts/make_samples.py --headers lower [--rows 200] [--seed 7] OUT.csv

`--headers STYLE` writes one export whose headers are named another way (see HEADER_STYLES):
Clay's own display names, lower case, snake_case, camelCase, or a CRM's words for the same
columns. The designer's suggestions are measured on them.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import re
from collections.abc import Callable
from pathlib import Path

COLUMNS = [
    "Full Name",
    "First Name",
    "Last Name",
    "Work Email",
    "Find Work Email",
    "Find Work Email (2)",
    "Phone Number",
    "Profile Picture",
    "Job Title",
    "Seniority",
    "Department",
    "Company Name",
    "Company Domain",
    "Company Website",
    "Company LinkedIn URL",
    "Employee Count",
    "Industry",
    "Company HQ",
    "Founded Year",
    "Annual Revenue",
    "LinkedIn URL",
    "Location",
    "Zip Code",
    "Enrich Person",
    "Enrich Company",
    "Enrich Company (2)",
    "Technologies",
    "Recent News",
    "Personalized Opener",
    "ICP Score",
    "Intent Signal",
    "Last Enriched At",
    "Lead Source",
    "Notes",
]

FIRST = ["Jane", "John", "Amélie", "Kenji", "Priya", "Lars", "Chloé", "Mateo", "Zoë", "Olu", "Sofía", "Wei"]
LAST = ["Doe", "Smith", "Dubois", "Tanaka", "Patel", "Nilsson", "O'Brien", "García", "Müller", "Okafor"]
COMPANIES = [
    ("Acme", "acme.com", "Software"),
    ("Globex", "globex.io", "Manufacturing"),
    ("Initech", "initech.co", "Financial Services"),
    ("Umbrella", "umbrella-corp.com", "Biotech"),
    ("Hooli", "hooli.xyz", "Internet"),
    ("Stark Industries", "stark.com", "Defense"),
    ("Wayne Enterprises", "wayne.co", "Conglomerate"),
    ("Soylent", "soylent.food", "Food & Beverage"),
]
TITLES = ["VP of Sales", "Head of Growth", "CTO", "Account Executive", "Marketing Manager", "Founder & CEO"]
SENIORITY = ["vp", "director", "c_suite", "manager", "senior", "entry"]
DEPARTMENTS = ["sales", "marketing", "engineering", "operations", "executive"]
CITIES = [
    ("San Francisco, CA", "94107"),
    ("Boston, MA", "02110"),
    ("Newark, NJ", "07102"),
    ("Austin, TX", "78701"),
    ("Paris, France", "75002"),
]
TECH = ["Salesforce", "HubSpot", "Segment", "Snowflake", "Stripe", "Intercom", "Knock", "Clay"]
SOURCES = ["Clay: Find people", "LinkedIn Sales Navigator", "Webinar", "Inbound demo"]


# Other words for the same columns, as a CRM export or a hand-made sheet names them.
CRM_NAMES = {
    "Full Name": "Name",
    "Work Email": "Email Address",
    "Find Work Email": "Email Finder Result",
    "Find Work Email (2)": "Email Finder Result (2)",
    "Phone Number": "Mobile",
    "Profile Picture": "Photo URL",
    "Job Title": "Title",
    "Company Name": "Account Name",
    "Company Domain": "Domain",
    "Company Website": "Website",
    "Company LinkedIn URL": "Account LinkedIn",
    "Employee Count": "Employees",
    "LinkedIn URL": "LinkedIn Profile",
    "ICP Score": "Lead Score",
    "Intent Signal": "Buying Intent",
}


def _camel(column: str) -> str:
    words = re.findall(r"[A-Za-z0-9]+", column)
    return words[0].lower() + "".join(w[:1].upper() + w[1:].lower() for w in words[1:])


HEADER_STYLES: dict[str, Callable[[str], str]] = {
    "clay": lambda column: column,
    "lower": str.lower,
    "snake": lambda column: "_".join(re.findall(r"[a-z0-9]+", column.lower())),
    "camel": _camel,
    "crm": lambda column: CRM_NAMES.get(column, column),
}


def _quote_text(rng: random.Random, name: str, company: str) -> str:
    lines = [
        f'{company} announced "Project Atlas", a new platform, this quarter.',
        f"{name.split()[0]} spoke at SaaStr, on pricing, churn and expansion.",
        f"Hiring: 12 roles in sales, {rng.randint(2, 9)} in engineering.",
    ]
    rng.shuffle(lines)
    return "\n".join(lines[: rng.randint(2, 3)])


def lead_row(i: int, rng: random.Random) -> dict[str, str]:
    """One enriched lead as Clay exports it: every value text, many blanks."""
    first, last = rng.choice(FIRST), rng.choice(LAST)
    company, domain, industry = rng.choice(COMPANIES)
    name = f"{first} {last}"
    local = (first[0] + last).lower().replace("'", "").replace("é", "e").replace("ü", "u").replace("í", "i")
    email = f"{local}.{i}@{domain}"
    found = rng.random() < 0.85
    city, zip_code = rng.choice(CITIES)
    score = rng.randint(5, 99)
    person = {
        "full_name": name,
        "headline": f"{rng.choice(TITLES)} at {company}",
        "skills": rng.sample(TECH, 3),
        "experience": [
            {"company": company, "title": rng.choice(TITLES), "start": f"20{rng.randint(10, 23)}"}
        ],
    }
    org = {
        "name": company,
        "domain": domain,
        "employees": rng.randint(5, 5000),
        "funding": {"stage": rng.choice(["Seed", "Series A", "Series B", "Public"]), "total_usd": 12_500_000},
        "tags": rng.sample(TECH, 2),
    }
    blank_email = rng.random() < 0.08
    return {
        "Full Name": name,
        "First Name": first,
        "Last Name": last,
        "Work Email": "" if blank_email else (f"✅ {email}" if rng.random() < 0.1 else email),
        "Find Work Email": f"✅ {email}" if found else "❌ No email found",
        "Find Work Email (2)": f"✅ {email}" if found and rng.random() < 0.5 else "",
        "Phone Number": f"+1 415 555 {rng.randint(0, 9999):04d}" if rng.random() < 0.6 else "",
        "Profile Picture": f"https://media.licdn.com/dms/image/{i:06d}/profile.jpg"
        if rng.random() < 0.7
        else "",
        "Job Title": rng.choice(TITLES),
        "Seniority": rng.choice(SENIORITY),
        "Department": rng.choice(DEPARTMENTS),
        "Company Name": company,
        "Company Domain": domain,
        "Company Website": f"https://www.{domain}",
        "Company LinkedIn URL": f"https://www.linkedin.com/company/{domain.split('.')[0]}",
        "Employee Count": str(org["employees"]),
        "Industry": industry,
        "Company HQ": city,
        "Founded Year": str(rng.randint(1950, 2022)),
        "Annual Revenue": f"${rng.randint(1, 900)}M",
        "LinkedIn URL": f"https://www.linkedin.com/in/{local}-{i}",
        "Location": city,
        "Zip Code": zip_code if rng.random() < 0.9 else "00123",
        "Enrich Person": json.dumps(person, ensure_ascii=False),
        "Enrich Company": json.dumps(org, ensure_ascii=False),
        "Enrich Company (2)": json.dumps(org, ensure_ascii=False) if rng.random() < 0.3 else "",
        "Technologies": ", ".join(rng.sample(TECH, rng.randint(1, 4))),
        "Recent News": _quote_text(rng, name, company) if rng.random() < 0.6 else "",
        "Personalized Opener": f'Hi {first},\nsaw {company}\'s "big" news, congrats!'
        if rng.random() < 0.5
        else "",
        "ICP Score": str(score),
        "Intent Signal": "✅ High" if score >= 80 else ("❌ Not found" if rng.random() < 0.5 else "⚠️ Low"),
        "Last Enriched At": f"2026-0{rng.randint(1, 9)}-{rng.randint(10, 28)}T{rng.randint(10, 23)}:15:00Z",
        "Lead Source": rng.choice(SOURCES),
        "Notes": "" if rng.random() < 0.9 else 'Met at "Dreamforce", follow up, Q3',
    }


def write_rows(path: Path, header: list[str], rows, *, bom: bool = False, newline: str = "\r\n") -> int:
    """Write a CSV the way Clay does: every field quoted. Returns the number of rows written."""
    n = 0
    with open(path, "w", encoding="utf-8-sig" if bom else "utf-8", newline="") as f:
        writer = csv.writer(f, quoting=csv.QUOTE_ALL, lineterminator=newline)
        writer.writerow(header)
        for row in rows:
            writer.writerow([row.get(c, "") for c in header] if isinstance(row, dict) else row)
            n += 1
    return n


def write_export(
    path: Path,
    rows: int,
    seed: int = 7,
    *,
    bom: bool = False,
    newline: str = "\r\n",
    headers: str = "clay",
) -> int:
    """A realistic Clay export of `rows` leads (streamed, so any size fits in memory), its
    headers named in one of `HEADER_STYLES`."""
    rng = random.Random(seed)
    rename = HEADER_STYLES[headers]
    leads = ({rename(k): v for k, v in lead_row(i, rng).items()} for i in range(1, rows + 1))
    return write_rows(path, [rename(c) for c in COLUMNS], leads, bom=bom, newline=newline)


def write_samples(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []

    def target(name: str) -> Path:
        written.append(out / name)
        return out / name

    # The default export the notebooks use: 200 leads, CRLF like Clay's download.
    write_export(target("clay_leads_sample.csv"), 200, seed=7)
    # A small export saved with a BOM (as Excel re-saves it) and CRLF line ends.
    write_export(target("clay_bom_crlf.csv"), 12, seed=11, bom=True)
    # LF line ends, no BOM.
    write_export(target("clay_lf.csv"), 12, seed=13, newline="\n")
    # Two columns with the very same display name, which Clay allows.
    write_rows(
        target("clay_duplicate_headers.csv"),
        ["Full Name", "Email", "Email", "Zip Code", "Phone Number"],
        [
            ["Jane Doe", "jane@acme.com", "jane.doe@acme.com", "00123", "+1 415 555 0100"],
            ["Kenji Tanaka", "", "kenji@globex.io", "02110", ""],
        ],
    )
    # A table with no rows: the header alone; and a file with nothing at all.
    write_rows(target("clay_header_only.csv"), COLUMNS, [])
    target("clay_empty.csv").write_text("", encoding="utf-8")
    # Not a CSV export: a JSON document saved with a .csv name.
    target("not_a_clay_export.csv").write_text(
        json.dumps({"event": "lead.enriched", "email": "jane@acme.com", "full_name": "Jane Doe"}, indent=2)
        + "\n",
        encoding="utf-8",
    )
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "data" / "samples"))
    parser.add_argument("--headers", choices=sorted(HEADER_STYLES), help="write one export, headers so named")
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("target", nargs="?", help="with --headers: the CSV file to write")
    args = parser.parse_args()
    if args.headers:
        target = Path(args.target or f"clay_leads_{args.headers}.csv")
        write_export(target, args.rows, args.seed, headers=args.headers)
        print(target)
        return
    for path in write_samples(Path(args.out)):
        print(path)


if __name__ == "__main__":
    main()
