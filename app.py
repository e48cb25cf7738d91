"""Start the SynOOD Explorer app: `python app.py [--suite S] [--host H] [--port P] [--auth USER:PASSWORD]
[--data-root DIR ...]`.

Access: it binds 127.0.0.1 (this machine only) unless --host says otherwise, and warns when it serves beyond this
machine (another address, or --share) without --auth. Folders, manifests and detector files typed into the app are
read only under its data roots (ui/access.py): the --data-root folders, else $SYNOOD_DATA_ROOTS (separated by
os.pathsep), else the working directory; they are printed at start-up. Over HTTP it serves only its own thumbnail
folder from disk, besides what Gradio itself handles (its upload and cache folders). The `synood` CLI is the local
user's own tool and is not confined.
"""
from __future__ import annotations

import argparse
import ipaddress
import sys

from ui.access import DataRoots
from synood.cli import add_config_args, config_from_args
from synood.data.images import MB
from synood.errors import UserError
from synood.models import Suite


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_config_args(parser)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    parser.add_argument("--auth", metavar="USER:PASSWORD", help="require this login")
    parser.add_argument("--share", action="store_true", help="also open a public Gradio share link")
    parser.add_argument("--data-root", metavar="DIR", action="append",
                        help="a folder whose files the app may read (repeatable; default: $SYNOOD_DATA_ROOTS, "
                             "else the working directory)")
    return parser.parse_args(argv)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def exposure_warning(host: str, share: bool, auth: tuple[str, str] | None) -> str | None:
    """The warning for serving beyond this machine without a login, or None."""
    if auth is not None or (not share and is_loopback(host)):
        return None
    return (f"WARNING: serving beyond this machine ({'share link' if share else host}) without --auth: anyone who "
            "can reach it can use the app.")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config = config_from_args(args)
        suite = Suite.from_config(config.models)
        roots = DataRoots.from_settings(args.data_root)
    except UserError as exc:
        print(f"app.py: error: {exc}", file=sys.stderr)
        return 2
    auth = None
    if args.auth:
        user, sep, password = args.auth.partition(":")
        if not (sep and user and password):
            print("app.py: error: --auth takes USER:PASSWORD", file=sys.stderr)
            return 2
        auth = (user, password)
    warning = exposure_warning(args.host, args.share, auth)
    if warning:
        print(warning, file=sys.stderr)
    print(f"SynOOD Explorer: suite {suite.name}" + (f" ({suite.notice})" if suite.notice else ""), flush=True)
    print(f"Data roots (folders and files typed into the app must lie under these): {roots.describe()}", flush=True)

    from ui import CSS_PATH, build_app
    from ui.detector import preload_libraries
    from ui.thumbnails import thumbnail_dir

    app = build_app(config, suite, roots)
    preload_libraries()
    try:  # no blocked_paths: nothing else is allowed, and a list would override $GRADIO_BLOCKED_PATHS
        app.queue(default_concurrency_limit=4).launch(
            server_name=args.host, server_port=args.port, share=args.share, auth=auth,
            css_paths=CSS_PATH, footer_links=["api"], allowed_paths=[str(thumbnail_dir())],
            max_file_size=None if config.images.max_file_mb is None else int(config.images.max_file_mb * MB))
    except OSError as exc:
        print(f"app.py: error: cannot serve on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
