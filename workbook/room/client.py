"""A learner's side of the room: once the facilitator's collector is named (`WORKBOOK_ROOM=http://host:port`, or
`join(url, seat)`), each check-yourself answer is sent to it as one `Record`; without it nothing is sent.

Sending never fails a notebook and never holds it up for long: the record goes from a background thread, and the
check waits for it at most `WAIT_SECONDS` (a slow name lookup or a silent collector included). A record the collector
refuses or does not answer in that time is reported by a one-line notice, shown once; one still on its way after the
wait may yet arrive, within `DELIVERY_SECONDS`.
"""

from __future__ import annotations

import getpass
import hashlib
import http.client
import json
import os
import socket
import threading
import time
import urllib.request
from urllib.parse import urlsplit

from ..errors import WorkbookError

ROOM_VARIABLE, SEAT_VARIABLE = "WORKBOOK_ROOM", "WORKBOOK_SEAT"
WAIT_SECONDS = 0.5  # how long a check waits for the collector
DELIVERY_SECONDS = 10  # how long the background thread keeps trying to deliver one record

_joined: tuple[str, str] | None = None  # (url, seat) given to join(), which win over the environment
_noticed = False


def join(url: str, seat: str) -> None:
    """Send every check-yourself answer from now on to the collector at `url`, as `seat` (a name you pick)."""
    global _joined
    from .record import check_seat

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise WorkbookError(f"The room's address is http://host:port, as the facilitator gives it, not {url!r}.")
    _joined = (url.rstrip("/"), check_seat(seat))


def leave() -> None:
    """Stop sending answers that join() started sending (WORKBOOK_ROOM, if set, still applies)."""
    global _joined
    _joined = None


def anonymous_seat() -> str:
    """The seat of a learner who named none: the same on this computer every time, and saying nothing about who."""
    who = f"{getpass.getuser()}@{socket.gethostname()}"
    return f"seat-{hashlib.sha256(who.encode()).hexdigest()[:4]}"


def room() -> tuple[str, str] | None:
    """Where answers go and as which seat: join()'s, else the environment's; None when no room is set."""
    if _joined is not None:
        return _joined
    url = os.environ.get(ROOM_VARIABLE, "").strip()
    if not url:
        return None
    return url.rstrip("/"), os.environ.get(SEAT_VARIABLE, "").strip() or anonymous_seat()


def send(exercise: str, *, correct: bool, tries: int) -> None:
    """Tell the room about one answer, if a room is set; on any failure, print the one-line notice once."""
    where = room()
    if where is None:
        return
    from .catalogue import exercises

    url, seat = where
    known = exercises().get(exercise)
    if known is None:
        return
    record = {"seat": seat, "lesson": known.lesson, "exercise": exercise, "correct": correct, "tries": tries,
              "time": time.time()}
    failures: list[Exception] = []
    delivery = threading.Thread(target=_post, args=(f"{url}/records", record, failures), daemon=True)
    delivery.start()
    delivery.join(WAIT_SECONDS)
    if delivery.is_alive():
        _notice(url, f"no answer within {WAIT_SECONDS:g} s")
    elif failures:
        _notice(url, str(failures[0]))


def _post(address: str, record: dict, failures: list[Exception]) -> None:
    """POST one record; a failure goes into `failures` (this runs in a thread, where raising would be lost)."""
    request = urllib.request.Request(address, data=json.dumps(record).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=DELIVERY_SECONDS):
            pass
    except (OSError, ValueError, http.client.HTTPException) as error:
        failures.append(error)


def _notice(url: str, why: str) -> None:
    global _noticed
    if not _noticed:
        _noticed = True
        print(f"(The room at {url} did not take this answer: {why}. Your notebook works as before; "
              "this notice is shown once.)")
