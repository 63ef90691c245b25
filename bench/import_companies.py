#!/usr/bin/env python3
"""How fast `envol-ops import companies` registers a cluster's spreadsheet.

    .venv/bin/python bench/import_companies.py [--rows 100000] [--max-pending 4000]

Writes a CSV as a French spreadsheet exports it (BOM, `;`, decimal commas, spaces in SIRENs
and in thousands), starts a throwaway nats-server with Envol's streams provisioned, and times
the import's two steps, the same functions the command runs: validating every row with the
contract (and building its event), then publishing them with many acknowledgements
outstanding. Then it imports the file again: nothing new may be stored. Prints the rate;
the last line is machine-readable. The target: 100,000 rows in under a minute.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from pathlib import Path

import nats
from stdnum import luhn

from envol_shared.nats_server import NatsServer
from envol_shared.operations import importer
from envol_shared.topology import EVENTS_STREAM, provision

CLUSTER = "aerospace-valley"
HEADER = "SIREN;Legal name;Region;Staff AWU;Turnover EUR;Balance sheet EUR;Accounts year"


def siren(n: int) -> str:
    body = f"7{n:07d}"
    digits = body + luhn.calc_check_digit(body)
    return f"{digits[:3]} {digits[3:6]} {digits[6:]}"


def french(amount: float) -> str:
    """6 400 000,50: spaces between thousands, a decimal comma."""
    whole, cents = f"{amount:,.2f}".split(".")
    return whole.replace(",", " ") + "," + cents


def write_csv(path: Path, rows: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    lines = [HEADER]
    for n in range(rows):
        lines.append(";".join([
            siren(n), f"Entreprise {n}", rng.choice(["Occitanie", "Nouvelle-Aquitaine", "PACA"]),
            f"{rng.randint(1, 2400) / 2:.1f}".replace(".", ","),
            french(rng.randint(100_000, 80_000_000)), french(rng.randint(100_000, 60_000_000)),
            str(rng.choice([2023, 2024, 2025])),
        ]))
    path.write_bytes(("\n".join(lines) + "\n").encode("utf-8-sig"))


async def import_once(url: str, raw: bytes, max_pending: int) -> tuple[int, int, float, float]:
    """(new, duplicates, seconds validating, seconds publishing)."""
    started = time.perf_counter()
    parsed = importer.parse(importer.decode(raw), CLUSTER)
    validated = time.perf_counter()
    assert not parsed.refused, parsed.refused[:3]
    nc = await nats.connect(url)
    try:
        published = await importer.publish(nc, parsed.rows, max_pending=max_pending)
    finally:
        await nc.close()
    assert not published.failed, published.failed[:3]
    return published.new, published.duplicates, validated - started, time.perf_counter() - validated


async def main(rows: int, max_pending: int) -> None:
    with tempfile.TemporaryDirectory(prefix="envol-import-bench-") as tmp:
        path = Path(tmp) / "companies.csv"
        write_csv(path, rows)
        server = NatsServer(Path(tmp) / "jetstream")
        server.start()
        try:
            nc = await nats.connect(server.url)
            await provision(nc.jetstream())
            raw = path.read_bytes()
            new, duplicates, validating, publishing = await import_once(server.url, raw, max_pending)
            total = validating + publishing
            print(f"{rows:,} rows ({path.stat().st_size / 1e6:.1f} MB): validated in {validating:.1f} s, "
                  f"published in {publishing:.1f} s ({new:,} new, {duplicates:,} duplicates); "
                  f"{total:.1f} s in all, {rows / total:,.0f} rows/s")
            again_new, again_dup, _, again_pub = await import_once(server.url, raw, max_pending)
            stored = (await nc.jetstream().stream_info(EVENTS_STREAM)).state.messages
            print(f"imported again: {again_new:,} new, {again_dup:,} duplicates in {again_pub:.1f} s; "
                  f"{stored:,} events in {EVENTS_STREAM}")
            await nc.close()
            assert new == rows and again_new == 0 and stored == rows
            print(f"import_rows={rows} seconds={total:.2f} rows_per_s={rows / total:.0f}")
        finally:
            server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--max-pending", type=int, default=4000)
    args = parser.parse_args()
    asyncio.run(main(args.rows, args.max_pending))
