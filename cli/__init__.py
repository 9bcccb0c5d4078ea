"""The ``tingxie`` command. Each sub-command imports what it needs when it runs, so
``tingxie web`` never loads model code and ``tingxie --help`` is instant."""
from __future__ import annotations

import argparse
import dataclasses
import importlib
import importlib.util
import logging
import os
import signal
import sys

# Sub-commands contributed by their own modules: name -> module with add_parser(subparsers) and run(args).
PLUGINS = ("cli.transcribe", "cli.submit", "cli.jobs", "cli.models", "cli.gateway", "cli.workers", "cli.tokens")


def _settings():
    from core.settings import Settings

    return Settings.from_env()


def _apply_common(args) -> None:
    """Flags given on the command line become the environment, so child processes see them too."""
    if getattr(args, "data_dir", None):
        os.environ["TINGXIE_DATA_DIR"] = os.path.abspath(args.data_dir)
    if getattr(args, "port", None):
        os.environ["TINGXIE_PORT"] = str(args.port)
    if getattr(args, "host", None):
        os.environ["TINGXIE_HOST"] = args.host
    if getattr(args, "insecure_no_auth", False):
        os.environ["TINGXIE_AUTH"] = "insecure-no-auth"


def cmd_db(args) -> int:
    """Migrate; at head, refuse to say so when the schema does not match the models (exit 1)."""
    settings = _settings()
    from core.migrate import SchemaMismatchError, upgrade

    try:
        upgrade(settings, args.revision)
    except SchemaMismatchError as exc:
        print(f"tingxie db upgrade: {exc}", file=sys.stderr)
        return 1
    print(f"database at revision {args.revision}: {settings.database_url}")
    return 0


def cmd_web(args) -> int:
    """The web tier on uvicorn: ``--workers`` processes, each serving HTTP requests in
    ``--threads`` threads and job-events sockets on its event loop; ``--dev`` is one process."""
    if args.threads:
        os.environ["TINGXIE_WEB_THREADS"] = str(args.threads)
    settings = _settings()
    from web.server import serve

    print(f"tingxie web: {access_line(settings)}", flush=True)
    serve(settings, workers=1 if args.dev else args.workers)
    return 0


def cmd_worker(args) -> int:
    from worker.celery_app import run_worker

    settings = _settings()
    if args.threads:
        settings = dataclasses.replace(settings, worker_threads=args.threads)
    settings = _with_worker_profiles(settings, args.profiles)
    run_worker(settings, concurrency=args.concurrency, loglevel=args.loglevel)
    return 0


def _with_worker_profiles(settings, profiles: str | None):
    """``tingxie worker --profiles a,b``: the profiles this worker consumes (checked like the
    TINGXIE_WORKER_PROFILES setting it overrides)."""
    if not profiles:
        return settings
    from core.settings import SettingsError, parse_profiles

    try:
        return dataclasses.replace(settings, worker_profiles=parse_profiles(profiles))
    except ValueError as exc:
        raise SettingsError([f"--profiles {profiles!r}: {exc}"]) from None


def access_line(settings) -> str:
    from core import access

    return access.describe(settings)


def _up_banner(settings, with_gateway: bool) -> list[str]:
    """What `tingxie up` says about access: who needs a token, and, where the page needs one, a
    one-time sign-in link for its first user (an admin of the local tenant)."""
    from cli.tokens import signin_link
    from core import access

    lines = [f"  access: {access.describe(settings)}"]
    if not access.open_on_loopback(settings) and settings.auth != "insecure-no-auth":
        lines.append(f"  sign in (admin, once, within an hour): {signin_link(settings, admin=True)}")
    if with_gateway:
        who = ("every connection needs a token" if settings.gateway_require_token else
               f"FunASR clients without a token are tenant '{settings.gateway_tenant}'")
        lines.append(f"  FunASR gateway on port {settings.gateway_port}: {who}")
    return lines


def cmd_up(args) -> int:
    """Everything on one machine with no server installed: migrate, then web, worker and the
    FunASR gateway as child processes, each restarted with backoff if it dies (cli.supervise);
    Ctrl-C stops them all."""
    settings = _settings()
    from core.migrate import SchemaMismatchError, upgrade
    from worker.engines import check_profile_options

    check_profile_options(settings)
    try:
        upgrade(settings)
    except SchemaMismatchError as exc:
        print(f"tingxie up: {exc}", file=sys.stderr)
        return 1
    with_gateway = not args.no_gateway and importlib.util.find_spec("cli.gateway") is not None
    supervisor = _up_children(args, with_gateway)
    stopping = False

    def _stop(*_):
        nonlocal stopping
        stopping = True

    # Before the first child starts: a Ctrl-C from then on stops them all, however early it comes.
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    try:
        supervisor.start()
        print(f"tingxie is up: http://{settings.host}:{settings.port}  (data in {settings.data_dir}; Ctrl-C stops)",
              *_up_banner(settings, with_gateway), sep="\n", flush=True)
        supervisor.run(lambda: stopping)
    finally:
        supervisor.stop()
    return 0


def _up_children(args, with_gateway: bool):
    from cli.supervise import Supervisor

    me = [sys.executable, "-m", "cli"]
    supervisor = Supervisor()
    supervisor.add("web", me + ["web", "--dev"])
    supervisor.add("worker", me + ["worker", "--concurrency", str(args.concurrency)])
    if with_gateway:
        supervisor.add("gateway", me + ["gateway"])
    return supervisor


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tingxie", description="Self-hosted batch transcription.")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="run web + worker (+ FunASR gateway) on the embedded default")
    up.add_argument("--data-dir", help="where everything is kept (TINGXIE_DATA_DIR)")
    up.add_argument("--host")
    up.add_argument("--port", type=int)
    up.add_argument("--concurrency", type=int, default=1, help="worker processes (one model set each)")
    up.add_argument("--no-gateway", action="store_true", help="do not start the FunASR-protocol gateway")
    up.add_argument("--insecure-no-auth", action="store_true",
                    help="let anyone who can reach the web tier in without a token (TINGXIE_AUTH=insecure-no-auth); "
                         "on 127.0.0.1 this machine needs no token anyway")
    up.set_defaults(func=cmd_up)

    web = sub.add_parser("web", help="run the web tier (uvicorn: HTTP in threads, job-events sockets on an event loop)")
    web.add_argument("--host")
    web.add_argument("--port", type=int)
    web.add_argument("--dev", action="store_true", help="one process (what `tingxie up` runs)")
    web.add_argument("--insecure-no-auth", action="store_true",
                     help="let anyone who can reach it in without a token (TINGXIE_AUTH=insecure-no-auth)")
    web.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    web.add_argument("--threads", type=int, default=0,
                     help="HTTP requests at once per process (default: TINGXIE_WEB_THREADS, 32)")
    web.set_defaults(func=cmd_web)

    worker = sub.add_parser("worker", help="run a Celery worker (one model set per process)")
    worker.add_argument("--concurrency", type=int, default=1, help="processes, one model set each")
    worker.add_argument("--threads", type=int, default=0,
                        help="jobs at once in one process sharing its model set (default: TINGXIE_WORKER_THREADS, 1)")
    worker.add_argument("--profiles", help="comma-separated profiles whose jobs this worker takes (it loads their "
                                           "models; default: TINGXIE_WORKER_PROFILES, else TINGXIE_PROFILE)")
    worker.add_argument("--loglevel", default="INFO")
    worker.set_defaults(func=cmd_worker)

    db = sub.add_parser("db", help="database migrations")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    upgrade = db_sub.add_parser("upgrade", help="apply migrations (default: to head)")
    upgrade.add_argument("revision", nargs="?", default="head")
    upgrade.set_defaults(func=cmd_db)

    for name in PLUGINS:
        if importlib.util.find_spec(name) is not None:
            module = importlib.import_module(name)
            module.add_parser(sub).set_defaults(func=module.run)
    return parser


def quiet_alembic() -> None:
    """Alembic's start-up chatter (a line per autogenerate plugin, the dialect's name) says nothing
    to the person who ran a command; the revisions it applies are kept."""
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    logging.getLogger("alembic.runtime.migration").addFilter(
        lambda record: record.levelno > logging.INFO or record.getMessage().startswith("Running "))


def main(argv: list[str] | None = None) -> int:
    from core.settings import SettingsError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    quiet_alembic()
    args = build_parser().parse_args(argv)
    _apply_common(args)
    try:
        return args.func(args) or 0
    except SettingsError as exc:
        for line in exc.problems:
            print(f"tingxie: {line}", file=sys.stderr)
        return 2
