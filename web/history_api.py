"""History for charts and spreadsheets: ``/api/history`` (JSON) and ``/api/history.csv``.

``since`` and ``until`` are Unix seconds; a negative number means "seconds
before now" by the warmer's clock (``since=-3600``: the last hour), which is
what the dashboard uses. ``resolution`` is ``1s`` (raw, kept 48 h), ``1m``
(1-minute aggregates, kept 90 days) or ``auto`` (``1s`` up to two hours).
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from flask import Blueprint, Response, jsonify

from web.auth import read_required
from web.context import ctx
from web.errors import ApiError, choice_arg, number_arg
from web.history import COLUMNS, MAX_POINTS, MINUTE_KEEP_S

bp = Blueprint("history", __name__)

AUTO_RAW_MAX_S = 2 * 3600.0   # ``auto``: raw readings up to this span, minutes beyond
DEFAULT_SPAN_S = 3600.0
_FAR_S = 1e11                 # any Unix time we will meet (the year 5138)


def _query():
    c = ctx()
    if c.history is None:
        raise ApiError(503, f"the history is not available: {c.history_problem or 'no database'}")
    now_s = c.controller.clock.wall()
    since_s = number_arg("since", default=-DEFAULT_SPAN_S, low=-MINUTE_KEEP_S, high=_FAR_S)
    until_s = number_arg("until", default=now_s, low=-MINUTE_KEEP_S, high=_FAR_S)
    since_s = now_s + since_s if since_s < 0 else since_s
    until_s = now_s + until_s if until_s < 0 else until_s
    if until_s < since_s:
        raise ApiError(422, "until must not be before since", field="until", allowed={"min": since_s})
    resolution = choice_arg("resolution", default="auto", choices=("auto", *COLUMNS))
    if resolution == "auto":
        resolution = "1s" if until_s - since_s <= AUTO_RAW_MAX_S else "1m"
    rows = c.history.readings(since_s=since_s, until_s=until_s, resolution=resolution, limit=MAX_POINTS)
    return since_s, until_s, resolution, rows


@bp.get("/api/history")
@read_required("open_history")
def get_history():
    since_s, until_s, resolution, rows = _query()
    columns = COLUMNS[resolution]
    return jsonify({
        "since_s": since_s, "until_s": until_s, "resolution": resolution, "count": len(rows),
        "truncated": len(rows) >= MAX_POINTS,
        "series": {name: [row[i] for row in rows] for i, name in enumerate(columns)},
    })


@bp.get("/api/history.csv")
@read_required("open_history")
def get_history_csv():
    _since_s, _until_s, resolution, rows = _query()
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(("time_utc", *COLUMNS[resolution]))
    for row in rows:
        stamp = datetime.fromtimestamp(row[0], UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        writer.writerow((stamp, *("" if v is None else v for v in row)))
    return Response(out.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="stonewarmer-history-{resolution}.csv"'})
