"""Start the SynOOD Explorer app: `python app.py [--suite S] [--host H] [--port P] [--auth USER:PASSWORD]`."""
from __future__ import annotations

import argparse
import ipaddress
import sys

from synood.cli import add_config_args, config_from_args
from synood.config import ConfigError
from synood.models import ModelUnavailableError, Suite


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    add_config_args(parser)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    parser.add_argument("--auth", metavar="USER:PASSWORD", help="require this login")
    parser.add_argument("--share", action="store_true", help="also open a public Gradio share link")
    return parser.parse_args(argv)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config = config_from_args(args)
        suite = Suite.from_config(config.models)
    except (ConfigError, ModelUnavailableError) as exc:
        print(f"app.py: error: {exc}", file=sys.stderr)
        return 2
    auth = None
    if args.auth:
        user, sep, password = args.auth.partition(":")
        if not (sep and user and password):
            print("app.py: error: --auth takes USER:PASSWORD", file=sys.stderr)
            return 2
        auth = (user, password)
    if (args.share or not is_loopback(args.host)) and auth is None:
        print(f"WARNING: serving beyond this machine ({'share link' if args.share else args.host}) without "
              "--auth: anyone who can reach it can use the app.", file=sys.stderr)
    print(f"SynOOD Explorer: suite {suite.name}" + (f" ({suite.notice})" if suite.notice else ""), flush=True)

    from synood.pairs import thumbnail_dir
    from ui import CSS_PATH, build_app

    app = build_app(config, suite)
    app.queue(default_concurrency_limit=4).launch(
        server_name=args.host, server_port=args.port, share=args.share, auth=auth,
        css_paths=CSS_PATH, footer_links=["api"], allowed_paths=[str(thumbnail_dir())])
    return 0


if __name__ == "__main__":
    sys.exit(main())
