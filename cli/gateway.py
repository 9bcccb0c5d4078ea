"""``tingxie gateway``: the FunASR-protocol WebSocket endpoint, with FunASR's own flag names."""
from __future__ import annotations

import logging
from pathlib import Path


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "gateway",
        help="serve the FunASR WebSocket protocol (port 10095, wss with a self-signed certificate)",
        description="FunASR clients (Python, C++, Java, html5 ...) connect here unchanged; every file "
                    "they send becomes a tingxie job.",
    )
    parser.add_argument("--host", help="address to listen on (default TINGXIE_HOST, 127.0.0.1; 0.0.0.0 for all)")
    # Its own dest: a plain `port` would become TINGXIE_PORT (the web tier's port, whose page is the
    # gateway's own origin for browsers).
    parser.add_argument("--port", type=int, dest="gateway_port", help="port (default TINGXIE_GATEWAY_PORT, 10095)")
    parser.add_argument("--certfile", help="PEM certificate; 0 serves plain ws (default: self-signed, made once "
                                           "under the data directory)")
    parser.add_argument("--keyfile", help="PEM private key for --certfile")
    parser.add_argument("--hotword", type=Path, help="server-wide hotword file, one 'word weight' a line, merged "
                                                     "with each connection's hotwords")
    parser.add_argument("--idle-timeout", type=float, help="seconds a file may go without a frame (default 60)")
    parser.add_argument("--max-frame-mb", type=float, help="largest message accepted, in MiB (default 8)")
    parser.add_argument("--tenant", help="tenant of the jobs of clients that send no token (default "
                                         "TINGXIE_GATEWAY_TENANT, local)")
    parser.add_argument("--require-token", action="store_true", default=None,
                        help="refuse connections without a valid token (Authorization: Bearer, or ?token= on "
                             "the URL); default TINGXIE_GATEWAY_REQUIRE_TOKEN, off")
    parser.add_argument("--loglevel", default="INFO")
    return parser


def run(args) -> int:
    from core.settings import Settings, tenant_name
    from gateway import GatewayConfig, serve

    logging.basicConfig(level=args.loglevel.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings.from_env()
    if args.keyfile and not args.certfile:
        raise SystemExit("--keyfile needs --certfile")
    if args.tenant is not None:
        try:
            tenant_name(args.tenant)
        except ValueError as exc:
            raise SystemExit(f"--tenant {args.tenant!r}: {exc}") from None
    config = GatewayConfig.from_settings(
        settings,
        host=args.host,
        port=args.gateway_port,
        certfile=args.certfile,
        keyfile=args.keyfile,
        hotword_file=args.hotword.expanduser().resolve() if args.hotword else None,
        idle_timeout_s=args.idle_timeout,
        max_frame_bytes=int(args.max_frame_mb * 1024 * 1024) if args.max_frame_mb else None,
        tenant=args.tenant,
        require_token=args.require_token,
    )
    scheme = "ws" if config.certfile == "0" else "wss"
    who = ("every connection needs a token" if config.require_token
           else f"clients without a token are tenant '{config.tenant}'")
    print(f"tingxie gateway (FunASR protocol) on {scheme}://{config.host}:{config.port}: {who}", flush=True)
    serve(settings, config)
    return 0
