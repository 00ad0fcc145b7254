"""The desk's web application (aiohttp, Jinja2 templates): the case list, case pages, feedback
and exports. Every view of the list is a URL; the page's script only fetches ``/rows`` with the
same query and replaces the results, so the page also works as plain links and forms."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jinja2
import orjson
from aiohttp import web
from markupsafe import Markup

from transitwatch.streams.desk.export import to_csv, to_xlsx
from transitwatch.streams.desk.model import Desk, country_name
from transitwatch.streams.desk.table import COLUMNS, GROUPS, ListQuery, apply
from transitwatch.streams.feedback import (
    VERDICTS,
    FeedbackError,
    FeedbackStoreError,
    to_jsonl,
)

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
UPLOT = HERE.parent / "assets" / "vendor" / "uplot"
DESK_KEY: web.AppKey[Desk] = web.AppKey("desk", Desk)
ENV_KEY: web.AppKey[jinja2.Environment] = web.AppKey("jinja", jinja2.Environment)
ROWS_KEY: web.AppKey[RowCache] = web.AppKey("rows")
REFRESH_KEY: web.AppKey[float] = web.AppKey("refresh", float)
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def money(value: Any, currency: Any = "") -> str:
    """``EUR 1.2m``; empty for anything that is not a finite number (records are input)."""
    if not _finite(value):
        return ""
    currency = currency if isinstance(currency, str) else ""
    sign = "-" if value < 0 else ""
    value = abs(value)
    for size, suffix in ((1e9, "bn"), (1e6, "m"), (1e3, "k")):
        if value >= size:
            return f"{currency} {sign}{value / size:.1f}{suffix}".strip()
    return f"{currency} {sign}{value:.0f}".strip()


def ratio(value: Any) -> str:
    return f"x{value:,.1f}" if _finite(value) else ""


def embedded_json(value: Any) -> Markup:
    """JSON for a ``<script type="application/json">`` element: nothing in it can end the element."""
    text = orjson.dumps(value).decode()
    return Markup(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                             autoescape=jinja2.select_autoescape(("html",)), undefined=jinja2.ChainableUndefined)
    env.filters["money"] = money
    env.filters["ratio"] = ratio
    env.filters["country"] = country_name
    env.filters["json"] = embedded_json
    # Record fields are input: a field of the wrong type shows as absent.
    env.filters["as_dict"] = lambda value: value if isinstance(value, dict) else {}
    env.filters["as_list"] = lambda value: value if isinstance(value, list) else []
    return env


class RowCache:
    """Each case row's HTML, rendered once per version of the desk's rows: a filter change then
    only joins rows already rendered."""

    def __init__(self, env: jinja2.Environment) -> None:
        self.template = env.get_template("_row.html")
        self.version = -1
        self.rows: dict[str, Markup] = {}

    def for_desk(self, desk: Desk):
        if desk.version != self.version:
            self.rows, self.version = {}, desk.version
        rows = self.rows

        def row_html(row: dict[str, Any]) -> Markup:
            html = rows.get(row["case_id"])
            if html is None:
                html = rows[row["case_id"]] = Markup(self.template.render(row=row))
            return html
        return row_html


def _render(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    html = request.app[ENV_KEY].get_template(template).render(**context)
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")


def _query(request: web.Request) -> ListQuery:
    params: dict[str, list[str]] = {}
    for key, value in request.query.items():
        params.setdefault(key, []).append(value)
    return ListQuery.parse(params)


def _view_context(request: web.Request) -> dict[str, Any]:
    desk = request.app[DESK_KEY]
    query = _query(request)
    version = desk.version  # before the rows: a change in between shows as a change, never hides one
    view = apply(desk.rows(), query, desk.group_labels() if query.group else None)
    return {"view": view, "query": query, "columns": COLUMNS, "groups": GROUPS, "version": version,
            "row_html": request.app[ROWS_KEY].for_desk(desk)}


async def case_list(request: web.Request) -> web.Response:
    desk = request.app[DESK_KEY]
    return _render(request, "list.html", desk=desk, options=desk.options(), refresh=request.app[REFRESH_KEY],
                   **_view_context(request))


async def rows(request: web.Request) -> web.Response:
    return _render(request, "_results.html", **_view_context(request))


def _export_rows(request: web.Request) -> list[dict[str, Any]]:
    desk = request.app[DESK_KEY]
    query = _query(request)
    return apply(desk.rows(), query).rows if not query.group else apply(desk.rows(), query, desk.group_labels()).rows


async def export_csv(request: web.Request) -> web.Response:
    return web.Response(body=to_csv(_export_rows(request)), content_type="text/csv", charset="utf-8",
                        headers={"Content-Disposition": 'attachment; filename="cases.csv"'})


async def export_xlsx(request: web.Request) -> web.Response:
    return web.Response(body=to_xlsx(_export_rows(request)),
                        content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                        headers={"Content-Disposition": 'attachment; filename="cases.xlsx"'})


async def case_page(request: web.Request) -> web.Response:
    desk = request.app[DESK_KEY]
    case_id = request.match_info["case_id"]
    case = desk.case(case_id)
    if case is None:
        return _render(request, "missing.html", status=404, case_id=case_id)
    return _render(request, "case.html", case=case, row=desk.row(case_id), last=case.latest,
                   chart=desk.lane_chart(case), related=desk.related(case), feedback=desk.feedback_for(case_id),
                   verdicts=VERDICTS, error=request.query.get("error", ""), saved=request.query.get("saved") == "1")


def same_origin(request: web.Request) -> bool:
    """A state-changing request must come from a page of this desk: its Origin (or, failing that,
    its Referer) names this host. A request with neither is refused."""
    source = request.headers.get("Origin") or request.headers.get("Referer")
    if not source or source == "null":
        return False
    parts = urlsplit(source)
    return parts.scheme == request.scheme and parts.netloc == request.host


async def post_feedback(request: web.Request) -> web.Response:
    if not same_origin(request):
        return web.Response(status=403, text="feedback must be sent from the desk's own case page (same origin)")
    desk = request.app[DESK_KEY]
    case_id = request.match_info["case_id"]
    if desk.case(case_id) is None:
        return _render(request, "missing.html", status=404, case_id=case_id)
    form = await request.post()
    try:
        desk.add_feedback(case_id, verdict=str(form.get("verdict", "")), reason=str(form.get("reason", "")),
                          analyst=str(form.get("analyst", "")))
    except FeedbackError as exc:
        location = request.app.router["case"].url_for(case_id=case_id).with_query(error=str(exc))
        raise web.HTTPSeeOther(location) from None
    except FeedbackStoreError as exc:
        return web.Response(status=503, text=f"the feedback was not stored: {exc}")
    raise web.HTTPSeeOther(request.app.router["case"].url_for(case_id=case_id).with_query(saved="1"))


async def feedback_jsonl(request: web.Request) -> web.Response:
    body = to_jsonl(request.app[DESK_KEY].store.all())
    return web.Response(body=body, content_type="application/x-ndjson", charset="utf-8")


async def healthz(request: web.Request) -> web.Response:
    """What the desk holds, its rows' version (the list's script compares it with its own) and,
    when the last refresh failed, why (the desk keeps what it had)."""
    desk = request.app[DESK_KEY]
    return web.json_response({"cases": len(desk.cases), "records": desk.records, "bad_records": len(desk.bad),
                              "version": desk.version, "refresh_error": desk.refresh_error})


async def follow(desk: Desk, seconds: float, sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> None:
    """Read the source again every ``seconds`` (``--refresh``), off the event loop: new alert
    records become cases and the open list pages offer them. A source that cannot be read keeps
    the desk as it was, says why on ``/healthz`` and is tried again next time."""
    loop = asyncio.get_running_loop()
    while True:
        await sleep(seconds)
        try:
            changed = await loop.run_in_executor(None, desk.reload)
        except Exception as exc:  # noqa: BLE001 - the source's failure, not the desk's
            desk.refresh_error = f"{type(exc).__name__}: {exc}"
            log.warning("desk: could not read %s again: %s", desk.source.description, desk.refresh_error)
            continue
        desk.refresh_error = None
        if changed:
            log.info("desk: %d alert records, %d cases", desk.records, len(desk.cases))


def _follower(seconds: float) -> Callable[[web.Application], AsyncIterator[None]]:
    async def context(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(follow(app[DESK_KEY], seconds))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return context


@web.middleware
async def security_headers(request: web.Request, handler):
    response = await handler(request)
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    return response


def make_app(desk: Desk, refresh: float = 0.0) -> web.Application:
    """The desk's application; ``refresh`` > 0 reads the source again every so many seconds."""
    app = web.Application(middlewares=[security_headers], client_max_size=64 * 1024)
    app[DESK_KEY] = desk
    app[REFRESH_KEY] = refresh
    if refresh > 0:
        app.cleanup_ctx.append(_follower(refresh))
    app[ENV_KEY] = _environment()
    app[ROWS_KEY] = RowCache(app[ENV_KEY])
    app.router.add_get("/", case_list, name="list")
    app.router.add_get("/rows", rows)
    app.router.add_get("/export.csv", export_csv)
    app.router.add_get("/export.xlsx", export_xlsx)
    app.router.add_get("/case/{case_id}", case_page, name="case")
    app.router.add_post("/case/{case_id}/feedback", post_feedback)
    app.router.add_get("/feedback.jsonl", feedback_jsonl)
    app.router.add_get("/healthz", healthz)
    app.router.add_static("/static/", HERE / "static")
    app.router.add_static("/vendor/uplot/", UPLOT)
    return app
