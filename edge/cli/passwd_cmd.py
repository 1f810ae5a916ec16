"""``edge-inspect passwd``: a password hash for ``ops.users`` (the password itself is never stored)."""

from __future__ import annotations

import argparse
import getpass
import sys

from edge.errors import ConfigError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="login name")
    p.add_argument("--role", choices=("viewer", "operator"), default="operator")


def run(args: argparse.Namespace) -> int:
    from edge.ops.auth import hash_password

    password = getpass.getpass("password: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
    if len(password) < 8:
        raise ConfigError("password: at least 8 characters.")
    print(f"- {{name: {args.name}, role: {args.role}, password_hash: '{hash_password(password)}'}}")
    return 0
