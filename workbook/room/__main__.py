"""`python -m workbook.room serve`: the facilitator's collector and live grid, in one process (Ctrl-C stops it)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import WorkbookError

DEFAULT_DB = Path("workbook-room.sqlite3")


def serve(*, host: str, port: int, db: Path) -> None:
    """Take records and show the room at http://host:port/ until interrupted; records stay in `db`."""
    import uvicorn

    from .app import create_app
    from .store import Store

    store = Store(db)
    shown = "localhost" if host in ("0.0.0.0", "::") else host  # "every address" is not one a browser can open
    print(f"The room: http://{shown}:{port}/  (records kept in {store.path.resolve()}; Ctrl-C stops the collector)")
    print(f"Learners set WORKBOOK_ROOM=http://<this machine's address>:{port} and WORKBOOK_SEAT=<a name they pick>, "
          "or call workbook.room.join(url, seat) in a notebook.")
    uvicorn.run(create_app(store), host=host, port=port, log_level="warning")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m workbook.room", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser(
        "serve", help="start the collector and its live grid",
        description="Start the collector. It listens on this machine only (127.0.0.1) unless told otherwise: to let "
                    "the room's laptops reach it, add --host 0.0.0.0 (every network this machine is on can then send "
                    "records and see the grid; use it on a workshop network, not a public one).")
    serve_cmd.add_argument("--host", default="127.0.0.1",
                           help="address to listen on (default 127.0.0.1, this machine only; 0.0.0.0 opens it to the "
                                "room's network)")
    serve_cmd.add_argument("--port", type=int, default=8765, help="port to listen on (default 8765)")
    serve_cmd.add_argument("--db", type=Path, default=DEFAULT_DB,
                           help=f"SQLite file that keeps the records (default ./{DEFAULT_DB}); a restart with the "
                                "same file loses nothing, a new file starts an empty room")
    args = parser.parse_args(argv)
    try:
        serve(host=args.host, port=args.port, db=args.db)
    except WorkbookError as error:
        parser.error(str(error))


if __name__ == "__main__":
    main()
