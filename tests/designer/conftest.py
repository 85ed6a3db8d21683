"""A small Clay-like export in a real DuckDB file, with the blanks and marks exports have."""

import csv

import duckdb
import pytest

COLUMNS = [
    "Work Email",
    "Full Name",
    "Phone Number",
    "Profile Picture",
    "Job Title",
    "Company Name",
    "Company Domain",
    "LinkedIn URL",
    "ICP Score",
]


def export_rows(n=40):
    """Rows with known gaps: every 5th email blank, every 7th a Clay failure mark, scores 0..99."""
    rows = []
    for i in range(n):
        if i % 5 == 0:
            email = ""
        elif i % 7 == 0:
            email = "❌ No email found"
        elif i % 3 == 0:
            email = f"✅ person{i}@acme{i % 4}.com"
        else:
            email = f"person{i}@acme{i % 4}.com"
        rows.append(
            {
                "Work Email": email,
                "Full Name": f"Person {i}",
                "Phone Number": "" if i % 2 else f"+1 415 555 {i:04d}",
                "Profile Picture": f"https://cdn.example.com/p/{i}.png",
                "Job Title": "VP Sales" if i % 2 else "Founder",
                "Company Name": f"Acme {i % 4}",
                "Company Domain": "" if i % 6 == 0 else f"acme{i % 4}.com",
                "LinkedIn URL": f"https://www.linkedin.com/in/person{i}",
                "ICP Score": "n/a" if i == 13 else str((i * 37) % 100),
            }
        )
    return rows


def write_export(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS, quoting=csv.QUOTE_ALL)
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture
def rows():
    return export_rows()


@pytest.fixture
def con(tmp_path, rows):
    from workbench.clay import load_export

    csv_path = write_export(tmp_path / "leads.csv", rows)
    connection = duckdb.connect(str(tmp_path / "workbench.duckdb"))
    load_export(csv_path, connection, table="leads")
    yield connection
    connection.close()
