"""`cc-collector serve [--config FILE]` and `cc-collector validate FILE`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from collector import __version__
from collector.config import Config, ConfigError, load
from collector.directory import Directory, DirectoryError


def _load(path: str | None) -> Config:
    config = load(path) if path else Config()
    if config.directory is not None:
        Directory.load(config.directory)  # fail at start, not on the first point
    return config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="cc-collector", description="Claude Code telemetry collector"
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the collector")
    serve.add_argument(
        "--config", help="otel-config.yaml (default: built-in, loopback only, no auth)"
    )
    validate = commands.add_parser("validate", help="check a config file and exit")
    validate.add_argument("file")
    args = parser.parse_args(argv)

    try:
        config = _load(args.config if args.command == "serve" else args.file)
    except (ConfigError, DirectoryError) as exc:
        print(f"cc-collector: invalid config: {exc}", file=sys.stderr)
        return 2
    if args.command == "validate":
        print(f"{args.file}: ok")
        return 0
    logging.basicConfig(
        level=config.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from collector.server import serve as run  # grpc import only when serving

    try:
        asyncio.run(run(config))
    except OSError as exc:
        print(f"cc-collector: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
