"""``tingxie workers``: the live workers as the database knows them (each announces itself every
few seconds), with the profiles each serves. ``--here`` is a container healthcheck: exit 0 when a
live worker runs on this host, 1 when none does."""
from __future__ import annotations

import argparse
import json
import socket
from datetime import timezone


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("workers", help="live workers and the profiles they serve (from the database)")
    parser.add_argument("--here", action="store_true",
                        help="only this host's; exit 1 when none is live (a healthcheck for a worker container)")
    parser.add_argument("--json", action="store_true", help="JSON on stdout")
    return parser


def run(args: argparse.Namespace) -> int:
    from core import workers
    from core.db import make_engine, make_sessionmaker
    from core.settings import Settings

    settings = Settings.from_env()
    engine = make_engine(settings.database_url)
    try:
        with make_sessionmaker(engine)() as session:
            rows = workers.live(session)
    finally:
        engine.dispose()
    if args.here:
        rows = [row for row in rows if row.hostname == socket.gethostname()]
    items = [{"id": row.id, "hostname": row.hostname, "profiles": row.profiles, "device": row.device,
              "started_at": row.started_at.replace(tzinfo=row.started_at.tzinfo or timezone.utc).isoformat(),
              "seen_at": row.seen_at.replace(tzinfo=row.seen_at.tzinfo or timezone.utc).isoformat()} for row in rows]
    if args.json:
        print(json.dumps(items, indent=2))
    elif not items:
        print("no live worker" + (" on this host" if args.here else ""))
    else:
        width = max(len(item["id"]) for item in items)
        for item in items:
            print(f"{item['id']:<{width}}  {','.join(item['profiles']):<16} {item['device']:<8} seen {item['seen_at']}")
    return 0 if items or not args.here else 1
