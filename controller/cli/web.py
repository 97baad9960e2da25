"""Dashboard subcommands: ``set-password`` and ``token``.

There is no default password: until ``set-password`` has run, the dashboard
refuses every change and says how to set one. Both write
``<state dir>/web-auth.json``; the running service picks the change up at once.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import TYPE_CHECKING

from controller.cli.options import UserError, add_config_arg, add_state_dir_arg, state_dir

if TYPE_CHECKING:  # the web package (Flask, waitress) is imported only by these commands, not by `run`
    from web.credentials import CredentialStore


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("set-password", help="set the dashboard password (needed for any change)")
    add_config_arg(p)
    add_state_dir_arg(p)
    p.add_argument("--stdin", action="store_true", help="read the password from the first line of stdin")
    p.set_defaults(handler=cmd_set_password)

    p = sub.add_parser("token", help="create, list or revoke API tokens for scripts")
    add_config_arg(p)
    add_state_dir_arg(p)
    p.add_argument("--name", default="default", help="the token's name (default: default); "
                                                     "creating a name again replaces its token")
    p.add_argument("--list", action="store_true", help="list token names instead")
    p.add_argument("--revoke", metavar="NAME", help="remove the token called NAME")
    p.set_defaults(handler=cmd_token)


def _store(args: argparse.Namespace) -> CredentialStore:
    from web import web_state_dir
    from web.credentials import CredentialStore

    return CredentialStore(web_state_dir(state_dir(args)))  # the web process's own directory


def cmd_set_password(args: argparse.Namespace) -> int:
    store = _store(args)
    if args.stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("New dashboard password: ")
        if getpass.getpass("Again: ") != password:
            raise UserError("the two passwords differ; nothing changed")
    from web.credentials import CredentialError

    try:
        store.set_password(password)
    except CredentialError as exc:  # the one message that adds to the store's own
        raise UserError(f"{exc}; nothing changed") from None
    except OSError as exc:
        raise UserError(f"cannot write {store.path}: {exc.strerror or exc}") from None
    print(f"password set in {store.path}; browsers signed in before must sign in again")
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    store = _store(args)
    try:
        if args.list:
            for t in store.tokens():
                print(t["name"])
            return 0
        if args.revoke:
            if not store.revoke_token(args.revoke):
                raise UserError(f"there is no token called {args.revoke!r}")
            print(f"token {args.revoke!r} revoked")
            return 0
        token = store.create_token(args.name)
    except OSError as exc:
        raise UserError(f"cannot write {store.path}: {exc.strerror or exc}") from None
    print(token)
    print(f"API token {args.name!r}: shown only this once. Send it as the header "
          f"'Authorization: Bearer <token>'.", file=sys.stderr)
    return 0
