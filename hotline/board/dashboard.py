"""Board page: the dashboard — key figures per city side by side, charts and definitions.

Everyone on the board sees the figures of every city as aggregates (no personal data, no
ticket contents); the breakdowns of a city are for its own staff, the network's for the
coordination. The figures come from `hotline.services.kpi`, which also checks those rights.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from sqlmodel import select

from hotline.board._core import Viewer, ViewerDep, get_db, render
from hotline.board.i18n import translator
from hotline.errors import Forbidden
from hotline.models import City
from hotline.services import kpi

router = APIRouter()

DEFAULT_DAYS = 30
WEEKLY_FROM_DAYS = 93  # longer periods show new tickets per week, not per day
EARLIEST = date(2000, 1, 1)
PRESETS = (7, 30, 90, 365)


@dataclass(slots=True)
class RangeForm:
    """The period the viewer asked for, as typed, with an error per field."""

    first: str
    last: str
    city: str
    errors: dict[str, str]
    period: kpi.Period | None = None


def today() -> date:
    return datetime.now(kpi.TIMEZONE).date()


def parse_range(
    first: str | None, last: str | None, city: str | None, _: Callable[..., str]
) -> RangeForm:
    """Dates as `JJJJ-MM-TT`; by default the last 30 days up to today (local time)."""
    now = today()
    form = RangeForm(
        first=(first or "").strip() or (now - timedelta(days=DEFAULT_DAYS - 1)).isoformat(),
        last=(last or "").strip() or now.isoformat(),
        city=(city or "").strip(),
        errors={},
    )
    days: dict[str, date] = {}
    for name, value in (("from", form.first), ("to", form.last)):
        try:
            days[name] = date.fromisoformat(value)
        except ValueError:
            form.errors[name] = _(
                "Bitte geben Sie ein gültiges Datum an (Format JJJJ-MM-TT, z. B. {example}).",
                example=now.isoformat(),
            )
            continue
        if days[name] < EARLIEST:
            form.errors[name] = _("Das Datum darf nicht vor dem 01.01.2000 liegen.")
        elif days[name] > now:
            form.errors[name] = _("Das Datum darf nicht in der Zukunft liegen.")
    if form.errors:
        return form
    start, end = days["from"], days["to"]
    if start > end:
        form.errors["from"] = _("Das Startdatum muss vor dem Enddatum liegen oder gleich sein.")
    elif (end - start).days + 1 > kpi.MAX_PERIOD_DAYS:
        form.errors["from"] = _(
            "Der Zeitraum darf höchstens zwei Jahre umfassen; bitte wählen Sie ein späteres Startdatum."
        )
    else:
        form.period = kpi.Period(start, end)
    return form


# --- formatting (German first) ------------------------------------------------------------


class Formats:
    """Numbers, shares and durations as people read them in the page's language."""

    def __init__(self, lang: str) -> None:
        self.lang = lang
        self._ = translator(lang)

    def num(self, value: float | None, digits: int = 0) -> str:
        if value is None:
            return "–"
        text = f"{value:,.{digits}f}"
        # German: 1.234,5 — swap the separators of the English form.
        return text.translate(str.maketrans(",.", ".,")) if self.lang == "de" else text

    def pct(self, value: float | None) -> str:
        if value is None:
            return "–"
        return f"{self.num(value * 100, 0)}\u00a0%" if self.lang == "de" else f"{value:.0%}"

    def duration(self, seconds: float | None) -> str:
        _ = self._
        if seconds is None:
            return "–"
        if seconds < 3600:
            return _("{n} Min.", n=self.num(seconds / 60))
        if seconds < 48 * 3600:
            return _("{n} Std.", n=self.num(seconds / 3600, 1))
        return _("{n} Tage", n=self.num(seconds / 86400, 1))

    def day(self, value: date) -> str:
        return value.strftime("%d.%m.%Y") if self.lang == "de" else value.isoformat()

    def short_day(self, value: date) -> str:
        """For chart axes: 23.10. / 23 Oct (English month names come with Python)."""
        return value.strftime("%d.%m.") if self.lang == "de" else value.strftime("%d %b")


def _percent(value: float | None) -> float | None:
    return round(value * 100, 1) if value is not None else None


def _series(figures: kpi.NetworkFigures, weekly: bool) -> tuple[list[date], dict[int, list[int]]]:
    """New tickets per day, or per week (Monday first) for long periods."""
    days = figures.period.each_day()
    if not weekly:
        return days, figures.daily
    starts: list[date] = []
    slot: list[int] = []
    for d in days:
        monday = d - timedelta(days=d.weekday())
        if not starts or starts[-1] != max(monday, days[0]):
            starts.append(max(monday, days[0]))
        slot.append(len(starts) - 1)
    weekly_counts = {}
    for city_id, counts in figures.daily.items():
        sums = [0] * len(starts)
        for i, n in enumerate(counts):
            sums[slot[i]] += n
        weekly_counts[city_id] = sums
    return starts, weekly_counts


def _context(
    viewer: Viewer, figures: kpi.NetworkFigures, detail: kpi.CityDetail, fmt: Formats
) -> dict[str, Any]:
    _ = fmt._
    cities = figures.cities
    names = [c.name for c in cities]
    values = [figures.by_city[c.id or 0] for c in cities]
    weekly = figures.period.days >= WEEKLY_FROM_DAYS
    points, counts = _series(figures, weekly)
    first_response = [_percent(f.first_response_share) for f in values]
    first_contact = [_percent(f.first_contact_share) for f in values]

    def spoken(shares: list[float | None]) -> str:
        return ", ".join(
            f"{name} {fmt.pct(s / 100) if s is not None else _('keine Daten')}"
            for name, s in zip(names, shares, strict=True)
        )

    chart = {
        "lang": fmt.lang,
        "cities": names,
        "firstResponse": first_response,
        "firstContact": first_contact,
        "targets": {
            "firstResponse": kpi.TARGET_FIRST_RESPONSE * 100,
            "firstContact": kpi.TARGET_FIRST_CONTACT * 100,
        },
        "days": [fmt.short_day(d) for d in points],
        "daily": [counts.get(c.id or 0, []) for c in cities],
        "text": {
            "share": _("Anteil in %"),
            "firstResponse": _("Erstreaktion im Ziel"),
            "firstContact": _("Erstkontaktlösung"),
            "target": _("Zielwert 115"),
            "newTickets": _("Neue Tickets"),
        },
    }

    def cells(
        value: Callable[[kpi.CityFigures], str],
        sub: Callable[[kpi.CityFigures], str] | None = None,
        target: float | None = None,
        share: Callable[[kpi.CityFigures], float | None] | None = None,
    ) -> list[dict[str, str | None]]:
        """One cell per city and the network: the value, a line of detail, the target status."""
        out: list[dict[str, str | None]] = []
        for f in [*values, figures.total]:
            status = None
            if target is not None and share is not None and (s := share(f)) is not None:
                status = "ok" if s >= target else "warn"
            out.append({"text": value(f), "sub": sub(f) if sub else None, "status": status})
        return out

    def of(part: int, whole: int) -> str:
        return _("{part} von {whole}", part=fmt.num(part), whole=fmt.num(whole))

    rows = [
        (_("Offene Tickets (aktueller Stand)"), cells(lambda f: fmt.num(f.open_tickets))),
        (_("Neue Tickets im Zeitraum"), cells(lambda f: fmt.num(f.new_tickets))),
        (
            _("Erstreaktion im Ziel"),
            cells(
                lambda f: fmt.pct(f.first_response_share),
                lambda f: of(f.first_response_within, f.first_response_measured),
                kpi.TARGET_FIRST_RESPONSE,
                lambda f: f.first_response_share,
            ),
        ),
        (_("Erstreaktion (Median)"), cells(lambda f: fmt.duration(f.first_response_median))),
        (_("Lösungszeit (Median)"), cells(lambda f: fmt.duration(f.resolution_median))),
        (
            _("Erstkontaktlösung"),
            cells(
                lambda f: fmt.pct(f.first_contact_share),
                lambda f: of(f.solved_first, f.contacts),
                kpi.TARGET_FIRST_CONTACT,
                lambda f: f.first_contact_share,
            ),
        ),
        (
            _("Antwortquote des Bots"),
            cells(lambda f: fmt.pct(f.bot_answer_rate), lambda f: of(f.bot_answers, f.asks)),
        ),
        (_("Weiterleitungen erhalten"), cells(lambda f: fmt.num(f.transfers_in))),
        (_("Weiterleitungen abgegeben"), cells(lambda f: fmt.num(f.transfers_out))),
        (
            _("Bewertung (Mittel, 1–5)"),
            cells(
                lambda f: fmt.num(f.rating_mean, 1),
                lambda f: _("{n} Bewertungen", n=fmt.num(f.ratings)),
            ),
        ),
    ]
    return {
        "rows": rows,
        "figures": figures,
        "detail": detail,
        "cities": cities,
        "values": values,
        "fmt": fmt,
        "chart": chart,
        "weekly": weekly,
        "points": points,
        "counts": counts,
        "label_first_response": _(
            "Balkendiagramm Erstreaktion im Ziel je Stadt: {values}. Zielwert {target}.",
            values=spoken(first_response),
            target=fmt.pct(kpi.TARGET_FIRST_RESPONSE),
        ),
        "label_first_contact": _(
            "Balkendiagramm Erstkontaktlösung je Stadt: {values}. Zielwert {target}.",
            values=spoken(first_contact),
            target=fmt.pct(kpi.TARGET_FIRST_CONTACT),
        ),
        "label_daily": _(
            "Liniendiagramm neue Tickets {unit} je Stadt vom {first} bis {last}; insgesamt: {values}.",
            unit=_("pro Woche") if weekly else _("pro Tag"),
            first=fmt.day(figures.period.first),
            last=fmt.day(figures.period.last),
            values=", ".join(f"{c.name} {sum(counts.get(c.id or 0, []))}" for c in cities),
        ),
    }


@router.get("/dashboard", response_class=HTMLResponse)
def dashboard(
    request: Request,
    viewer: ViewerDep,
    first: Annotated[str | None, Query(alias="from")] = None,
    last: Annotated[str | None, Query(alias="to")] = None,
    city: str | None = None,
) -> HTMLResponse:
    _ = translator(viewer.lang)
    form = parse_range(first, last, city, _)
    fmt = Formats(viewer.lang)
    db = get_db(request)
    with db.read() as session:
        choices = [c for c in session.exec(select(City).order_by(City.name)).all() if c.active]
        detail_city: City | None = viewer.city
        if viewer.is_coordinator:
            detail_city = next((c for c in choices if c.key == form.city), None)
            if form.city and detail_city is None:
                form.errors["city"] = _("Bitte wählen Sie eine Stadt aus der Liste.")
        elif form.city and (viewer.city is None or form.city != viewer.city.key):
            raise Forbidden(
                "Die Details anderer Städte sind nur deren Mitarbeitenden zugänglich.",
                code="city_forbidden",
            )
        ctx: dict[str, Any] = {
            "form": form,
            "choices": choices,
            "detail_city": detail_city,
            "presets": [
                (n, (today() - timedelta(days=n - 1)).isoformat(), today().isoformat())
                for n in PRESETS
            ],
            "fmt": fmt,
            "target_first_response": kpi.TARGET_FIRST_RESPONSE,
            "target_first_contact": kpi.TARGET_FIRST_CONTACT,
        }
        if form.errors or form.period is None:
            return render(request, viewer, "dashboard.html", ctx, status_code=422)
        figures = kpi.network_figures(session, viewer.actor, form.period)
        detail = kpi.city_detail(
            session, viewer.actor, form.period, detail_city.id if detail_city else None
        )
    ctx.update(_context(viewer, figures, detail, fmt))
    return render(request, viewer, "dashboard.html", ctx)
