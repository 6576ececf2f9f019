"""The citizen conversation, one implementation for Telegram and the web chat.

The state is a plain JSON-serialisable dict the channel stores between turns (aiogram FSM
storage for Telegram, the database for the web chat). Every entry point takes that dict,
changes it only when the turn succeeds, and returns the replies to show.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from email_validator import EmailNotValidError, validate_email

from bot.backend import (
    AskResult,
    Backend,
    BackendError,
    City,
    Entry,
    KBOffer,
    Requester,
    TicketDraft,
    Turn,
)
from bot.texts import Language, size_in_words, status_name, t
from hotline.settings import Settings

State = dict[str, Any]
COMMANDS = ("start", "stadt", "status", "neu", "loeschen", "hilfe")
POSTCODE = re.compile(r"^\s*(\d{5})\s*$")
LOCAL_TIME = ZoneInfo("Europe/Berlin")
WEEKDAYS = {
    "de": ("Mo.", "Di.", "Mi.", "Do.", "Fr.", "Sa.", "So."),
    "en": ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"),
}
# Telegram allows 64 bytes of callback data; longer keys are offered by position instead.
MAX_BUTTON_DATA = 64
MAX_SUBJECT = 120
MAX_TURN_CHARS = 4_000


@dataclass(frozen=True, slots=True)
class Button:
    label: str
    data: str


@dataclass(slots=True)
class Reply:
    text: str
    buttons: list[list[Button]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Context:
    """Who writes in which language; the idempotency key identifies the incoming message."""

    requester: Requester
    language: Language = "de"
    idempotency_key: str | None = None


class FetchError(Exception):
    """The channel could not fetch a document the citizen sent."""


def format_due(due: datetime, lang: str) -> str:
    """A deadline in Berlin time, German date format: "Di., 12.05.2026, 14:00 Uhr"."""
    if due.tzinfo is None:
        due = due.replace(tzinfo=UTC)
    local = due.astimezone(LOCAL_TIME)
    day = WEEKDAYS["en" if lang == "en" else "de"][local.weekday()]
    return t("due_format", lang, date=f"{day} {local:%d.%m.%Y}", time=f"{local:%H:%M}").strip()


def _one_line(text: str, limit: int) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


class Conversation:
    """The dialogue rules: greeting, city, question → answer/suggest/handover → ticket."""

    def __init__(
        self,
        backend: Backend,
        *,
        max_message_chars: int = 2_000,
        max_document_bytes: int = 5_000_000,
        transcript_limit: int = 30,
    ) -> None:
        self.backend = backend
        self.max_message_chars = max_message_chars
        self.max_document_bytes = max_document_bytes
        self.transcript_limit = transcript_limit

    @classmethod
    def from_settings(cls, backend: Backend, settings: Settings) -> Conversation:
        return cls(
            backend,
            max_message_chars=settings.chat_max_message_chars,
            max_document_bytes=settings.chat_max_document_bytes,
        )

    # --- entry points ---------------------------------------------------------------------

    async def start(self, state: State, ctx: Context) -> list[Reply]:
        """First contact (/start, first visit): greeting, privacy notice, usage, then the city."""
        return await self._run(state, ctx, self._start)

    async def command(self, state: State, ctx: Context, name: str) -> list[Reply]:
        """One of COMMANDS, without the slash."""
        return await self._run(state, ctx, lambda st: self._command(st, ctx, name))

    async def text(self, state: State, ctx: Context, text: str) -> list[Reply]:
        """A typed message."""
        return await self._run(state, ctx, lambda st: self._text(st, ctx, text))

    async def button(self, state: State, ctx: Context, data: str) -> list[Reply]:
        """A button the citizen chose (its `Button.data`)."""
        return await self._run(state, ctx, lambda st: self._button(st, ctx, data))

    async def document(
        self,
        state: State,
        ctx: Context,
        *,
        filename: str,
        size: int | None,
        content_type: str,
        fetch: Callable[[], Awaitable[bytes]],
    ) -> list[Reply]:
        """A document for the attached ticket; `fetch` downloads it only when it may be kept."""

        async def run(st: State) -> list[Reply]:
            return await self._document(st, ctx, filename, size, content_type, fetch)

        return await self._run(state, ctx, run)

    @staticmethod
    def attached_ticket(state: State) -> str | None:
        """The reference of the ticket further messages go to, if any."""
        ticket = state.get("ticket")
        return str(ticket) if ticket else None

    # --- plumbing ---------------------------------------------------------------------------

    async def _run(
        self,
        state: State,
        ctx: Context,
        turn: Callable[[State], Awaitable[list[Reply]]],
    ) -> list[Reply]:
        # Work on a copy: a turn that fails leaves the state as it was, so the citizen can retry.
        work = copy.deepcopy(state)
        work["lang"] = ctx.language
        try:
            replies = await turn(work)
        except BackendError as exc:
            key = "backend_unavailable" if exc.code == "backend_unavailable" else "error_generic"
            return [Reply(t(key, ctx.language))]
        except FetchError:
            return [Reply(t("error_generic", ctx.language))]
        state.clear()
        state.update(work)
        return replies

    def _record(self, st: State, role: str, text: str) -> None:
        transcript = st.setdefault("transcript", [])
        transcript.append({"role": role, "text": text[:MAX_TURN_CHARS]})
        del transcript[: -self.transcript_limit]

    def _say(self, st: State, text: str, buttons: list[list[Button]] | None = None) -> Reply:
        """A reply that belongs to the question flow and so to the transcript."""
        self._record(st, "bot", text)
        return Reply(text, buttons or [])

    @staticmethod
    def _reset_flow(st: State) -> None:
        for key in ("step", "ask_id", "suggestions", "handover", "services", "pending"):
            st.pop(key, None)

    # --- commands ---------------------------------------------------------------------------

    async def _start(self, st: State) -> list[Reply]:
        lang = st["lang"]
        self._reset_flow(st)
        st["greeted"] = True
        replies = [Reply(t("welcome", lang))]
        if not st.get("city_asked"):
            replies.append(await self._ask_city(st, "ask_city"))
        else:
            replies.append(self._next_prompt(st))
        return replies

    @staticmethod
    def _next_prompt(st: State) -> Reply:
        """What the citizen can do now: write to the attached ticket, or ask a question."""
        if st.get("ticket"):
            return Reply(t("attached_reminder", st["lang"], reference=st["ticket"]))
        return Reply(t("ask_question", st["lang"]))

    async def _command(self, st: State, ctx: Context, name: str) -> list[Reply]:
        lang = st["lang"]
        if name == "start":
            return await self._start(st)
        if name == "hilfe":
            return [Reply(t("help", lang))]
        if name == "stadt":
            self._reset_flow(st)
            return [await self._ask_city(st, "ask_city")]
        if name == "neu":
            self._reset_flow(st)
            for key in ("ticket", "question", "service", "offers", "transcript"):
                st.pop(key, None)
            return [Reply(t("new_question", lang))]
        if name == "status":
            return [await self._status(ctx)]
        if name == "loeschen":
            self._reset_flow(st)
            st["step"] = "erase"
            return [
                Reply(
                    t("erase_confirm", lang),
                    [
                        [Button(t("erase_yes", lang), "erase:yes")],
                        [Button(t("erase_no", lang), "erase:no")],
                    ],
                )
            ]
        raise ValueError(f"unknown command {name!r}")

    async def _status(self, ctx: Context) -> Reply:
        lang = ctx.language
        tickets = await self.backend.citizen_tickets(ctx.requester)
        if not tickets:
            return Reply(t("status_empty", lang))
        lines = [t("status_header", lang)]
        for ticket in tickets[:20]:
            lines.append(
                t(
                    "status_line",
                    lang,
                    reference=ticket.reference,
                    status=status_name(ticket.status, lang),
                    city=ticket.responsible_city_name or ticket.responsible_city,
                )
            )
        return Reply("\n".join(lines))

    # --- city -------------------------------------------------------------------------------

    async def _ask_city(self, st: State, text_key: str) -> Reply:
        lang = st["lang"]
        st["step"] = "city"
        cities = [c for c in await self.backend.cities() if len(f"city:{c.key}") <= MAX_BUTTON_DATA]
        rows = [[Button(c.name, f"city:{c.key}")] for c in cities[:8]]
        rows.append([Button(t("city_other_button", lang), "city:other")])
        return Reply(t(text_key, lang), rows)

    async def _city_chosen(self, st: State, ctx: Context, city: City | None) -> list[Reply]:
        lang = st["lang"]
        st["city_asked"] = True
        st.pop("step", None)
        if city is None:
            st.pop("city", None)
            st.pop("city_name", None)
            replies = [Reply(t("city_skipped", lang))]
        else:
            st["city"], st["city_name"] = city.key, city.name
            replies = [Reply(t("city_set", lang, city=city.name))]
        if st.get("handover") is not None:
            return replies + await self._continue_handover(st, ctx)
        pending = st.pop("pending", None)
        if pending:
            return replies + await self._question(st, ctx, pending)
        replies.append(self._next_prompt(st))
        return replies

    async def _city_text(self, st: State, ctx: Context, text: str) -> list[Reply]:
        """Typed text while the city is asked: a postcode, a city's name, or a question."""
        lang = st["lang"]
        match = POSTCODE.match(text)
        if match:
            city = await self.backend.city_by_postcode(match.group(1))
            if city is not None:
                return await self._city_chosen(st, ctx, city)
            st["step"] = "postcode"
            return [
                Reply(
                    t("postcode_unknown", lang, postcode=match.group(1)),
                    [[Button(t("city_skip_button", lang), "city:skip")]],
                )
            ]
        wanted = text.strip().casefold()
        for city in await self.backend.cities():
            if wanted in (city.name.casefold(), city.key.casefold()):
                return await self._city_chosen(st, ctx, city)
        if st.get("step") == "postcode" or st.get("handover") is not None:
            city_rows = (await self._ask_city(st, "ask_city")).buttons
            skip = [Button(t("city_skip_button", lang), "city:skip")]
            return [Reply(t("postcode_invalid", lang), [*city_rows, skip])]
        # A question before the city: keep it and answer it once the city is known.
        st["pending"] = text
        return [await self._ask_city(st, "ask_city_first")]

    # --- questions --------------------------------------------------------------------------

    async def _text(self, st: State, ctx: Context, text: str) -> list[Reply]:
        if not st.get("greeted"):
            # Whoever writes without /start (or after /loeschen) still gets the privacy notice.
            st["greeted"] = True
            return [Reply(t("welcome", st["lang"])), *await self._typed(st, ctx, text)]
        return await self._typed(st, ctx, text)

    async def _typed(self, st: State, ctx: Context, text: str) -> list[Reply]:
        lang = st["lang"]
        if len(text) > self.max_message_chars:
            return [Reply(t("too_long", lang, limit=self.max_message_chars))]
        if not text.strip():
            return [Reply(t("empty_text", lang))]
        if text.startswith("/"):
            name = text[1:].split(maxsplit=1)[0].split("@", 1)[0].lower() if text[1:] else ""
            if name in COMMANDS:
                return await self._command(st, ctx, name)
        step = st.get("step")
        if step in ("city", "postcode"):
            return await self._city_text(st, ctx, text)
        if step == "email":
            return await self._email_text(st, ctx, text)
        if step == "service":
            return [self._service_prompt(st)]
        if not st.get("city_asked"):
            st["pending"] = text
            return [await self._ask_city(st, "ask_city_first")]
        self._reset_flow(st)
        if st.get("ticket"):
            return await self._follow_up(st, ctx, text)
        return await self._question(st, ctx, text)

    async def _follow_up(self, st: State, ctx: Context, text: str) -> list[Reply]:
        lang, reference = st["lang"], st["ticket"]
        try:
            await self.backend.add_message(reference, text, idempotency_key=ctx.idempotency_key)
        except BackendError as exc:
            if exc.code not in ("ticket_closed", "not_found") and exc.status != 404:
                raise
            # The ticket is finished (or gone): the text is a new question.
            st.pop("ticket", None)
            st.pop("transcript", None)
            notice = Reply(t("ticket_closed_new_question", lang, reference=reference))
            return [notice, *await self._question(st, ctx, text)]
        return [Reply(t("followup_added", lang, reference=reference))]

    async def _question(self, st: State, ctx: Context, text: str) -> list[Reply]:
        lang = st["lang"]
        result = await self.backend.ask(
            text, city=st.get("city"), requester=ctx.requester, language=lang
        )
        self._reset_flow(st)
        st["question"], st["ask_id"], st["service"] = text, result.ask_id, result.service
        st["offers"] = []
        self._record(st, "citizen", text)
        if result.decision == "answer" and result.entry is not None:
            return self._show_answer(st, result.entry, result.score, "answer")
        # The question names a bank, tax office … that no entry near it does: say where to turn
        # before offering choices or the hotline.
        note = []
        if result.other_bodies:
            note.append(self._say(st, self._other_body_note(result.other_bodies, lang)))
        if result.decision == "suggest" and result.suggestions:
            return [*note, *self._show_suggestions(st, result)]
        if result.entry is not None:
            # Not shown to the citizen, but staff see what the matcher thought came closest.
            st["offers"].append(
                {
                    "entry": result.entry.id,
                    "title": result.entry.title,
                    "score": result.score,
                    "decision": "handover",
                }
            )
        return [*note, *self._offer_handover(st, "handover_offer")]

    @staticmethod
    def _other_body_note(bodies: Sequence[str], lang: str) -> str:
        quoted = [f"„{b}“" if lang == "de" else f"“{b}”" for b in bodies]
        named = quoted[-1]
        if len(quoted) > 1:
            named = f"{', '.join(quoted[:-1])} {t('and', lang)} {named}"
        return t("other_body_note", lang, bodies=named)

    def _show_answer(self, st: State, entry: Entry, score: float, how: str) -> list[Reply]:
        lang = st["lang"]
        if how == "answer":
            st["offers"].append(
                {"entry": entry.id, "title": entry.title, "score": score, "decision": "answer"}
            )
        if entry.service:
            st["service"] = entry.service
        st["step"] = "feedback"
        answer = self._say(st, entry.answer)
        question = self._say(
            st,
            t("helped_question", lang),
            [[Button(t("yes", lang), "fb:yes"), Button(t("no", lang), "fb:no")]],
        )
        return [answer, question]

    def _show_suggestions(self, st: State, result: AskResult) -> list[Reply]:
        lang = st["lang"]
        suggestions = result.suggestions[:3]
        st["suggestions"] = [[s.id, s.title] for s in suggestions]
        st["offers"].extend(
            {"entry": s.id, "title": s.title, "score": s.score, "decision": "suggest"}
            for s in suggestions
        )
        st["step"] = "suggest"
        rows = [[Button(s.title, f"pick:{i}")] for i, s in enumerate(suggestions)]
        rows.append([Button(t("nothing_fits", lang), "pick:none")])
        text = t("suggest_intro", lang)
        self._record(st, "bot", text + " " + " / ".join(s.title for s in suggestions))
        return [Reply(text, rows)]

    def _offer_handover(self, st: State, text_key: str) -> list[Reply]:
        lang = st["lang"]
        st["step"] = "offer"
        buttons = [[Button(t("handover_yes", lang), "ho:yes")], [Button(t("no", lang), "ho:no")]]
        return [self._say(st, t(text_key, lang), buttons)]

    # --- buttons ----------------------------------------------------------------------------

    async def _button(self, st: State, ctx: Context, data: str) -> list[Reply]:
        lang = st["lang"]
        action, _, arg = data.partition(":")
        step = st.get("step")
        if action == "rate":
            return await self._rate(ctx, arg)
        if action == "city":
            return await self._city_button(st, ctx, arg)
        if action == "fb" and step == "feedback":
            helped = arg == "yes"
            self._record(st, "citizen", t("yes" if helped else "no", lang))
            await self.backend.feedback(int(st["ask_id"]), helped=helped)
            if helped:
                self._reset_flow(st)
                return [self._say(st, t("helped_thanks", lang))]
            return self._offer_handover(st, "handover_offer_after_no")
        if action == "pick" and step == "suggest":
            suggestions = st.get("suggestions") or []
            if arg == "none":
                self._record(st, "citizen", t("nothing_fits", lang))
                # The service guessed from rejected suggestions is unreliable: ask for it.
                st["service"] = None
                return self._offer_handover(st, "handover_offer_after_no")
            if arg.isdigit() and int(arg) < len(suggestions):
                entry_id, title = suggestions[int(arg)]
                self._record(st, "citizen", title)
                entry = await self.backend.choose(int(st["ask_id"]), entry_id)
                return self._show_answer(st, entry, 0.0, "choice")
        if action == "ho" and step == "offer":
            if arg == "yes":
                self._record(st, "citizen", t("handover_yes", lang))
                st["handover"] = {}
                return await self._continue_handover(st, ctx)
            self._record(st, "citizen", t("no", lang))
            self._reset_flow(st)
            return [self._say(st, t("handover_declined", lang))]
        if action == "svc" and step == "service":
            choices = st.get("services") or []
            if arg.isdigit() and int(arg) < len(choices):
                st["service"] = choices[int(arg)][0]
                self._record(st, "citizen", choices[int(arg)][1])
            else:
                st["service"] = None
                self._record(st, "citizen", t("service_unknown", lang))
            st.pop("step", None)
            return await self._continue_handover(st, ctx)
        if action == "email" and step == "email":
            st.pop("step", None)
            return await self._continue_handover(st, ctx)
        if action == "erase" and step == "erase":
            st.pop("step", None)
            if arg != "yes":
                return [Reply(t("erase_cancelled", lang))]
            result = await self.backend.erase(ctx.requester)
            st.clear()
            st["lang"] = lang
            return [
                Reply(
                    t(
                        "erase_done",
                        lang,
                        tickets=result.tickets_anonymised,
                        asks=result.asks_deleted,
                    )
                )
            ]
        return [Reply(t("stale_button", lang))]

    async def _city_button(self, st: State, ctx: Context, arg: str) -> list[Reply]:
        lang = st["lang"]
        if arg == "other":
            st["step"] = "postcode"
            return [
                Reply(t("ask_postcode", lang), [[Button(t("city_skip_button", lang), "city:skip")]])
            ]
        if arg == "skip":
            return await self._city_chosen(st, ctx, None)
        for city in await self.backend.cities():
            if city.key == arg:
                return await self._city_chosen(st, ctx, city)
        return [await self._ask_city(st, "ask_city")]

    async def _rate(self, ctx: Context, arg: str) -> list[Reply]:
        lang = ctx.language
        reference, _, value = arg.rpartition(":")
        if not value.isdigit() or not 1 <= int(value) <= 5:
            return [Reply(t("stale_button", lang))]
        mine = {ticket.reference for ticket in await self.backend.citizen_tickets(ctx.requester)}
        if reference not in mine:
            return [Reply(t("rating_unknown", lang))]
        try:
            await self.backend.rate(reference, int(value))
        except BackendError as exc:
            if exc.code != "not_resolved":
                raise
            return [Reply(t("rating_not_resolved", lang, reference=reference))]
        return [Reply(t("rating_thanks", lang, rating=int(value)))]

    # --- handover ---------------------------------------------------------------------------

    async def _continue_handover(self, st: State, ctx: Context) -> list[Reply]:
        """Ask for the next thing routing needs, or open the ticket when all is known."""
        handover = st.setdefault("handover", {})
        if not st.get("city") and not handover.get("city_asked"):
            handover["city_asked"] = True
            return [await self._ask_city(st, "ask_city_handover")]
        if not st.get("service") and not handover.get("service_asked"):
            handover["service_asked"] = True
            services = [s for s in await self.backend.services()][:12]
            if services:
                st["services"] = [[s.key, s.name] for s in services]
                st["step"] = "service"
                return [self._service_prompt(st)]
        if not handover.get("email_asked"):
            handover["email_asked"] = True
            st["step"] = "email"
            lang = st["lang"]
            return [Reply(t("ask_email", lang), [[Button(t("email_skip", lang), "email:skip")]])]
        return await self._open_ticket(st, ctx)

    def _service_prompt(self, st: State) -> Reply:
        lang = st["lang"]
        rows = [[Button(name, f"svc:{i}")] for i, (_, name) in enumerate(st.get("services") or [])]
        rows.append([Button(t("service_unknown", lang), "svc:none")])
        return Reply(t("ask_service", lang), rows)

    async def _email_text(self, st: State, ctx: Context, text: str) -> list[Reply]:
        lang = st["lang"]
        try:
            email = validate_email(text.strip(), check_deliverability=False).normalized
        except EmailNotValidError:
            return [
                Reply(
                    t("email_invalid", lang, email=_one_line(text, 80)),
                    [[Button(t("email_skip", lang), "email:skip")]],
                )
            ]
        st["handover"]["email"] = email
        st.pop("step", None)
        return await self._continue_handover(st, ctx)

    async def _open_ticket(self, st: State, ctx: Context) -> list[Reply]:
        lang = st["lang"]
        question = st.get("question") or next(
            (
                turn["text"]
                for turn in reversed(st.get("transcript", []))
                if turn["role"] == "citizen"
            ),
            "",
        )
        draft = TicketDraft(
            subject=_one_line(question, MAX_SUBJECT),
            body=question,
            language=lang,
            origin_city=st.get("city"),
            service=st.get("service"),
            email=st.get("handover", {}).get("email"),
            transcript=[Turn(role=x["role"], text=x["text"]) for x in st.get("transcript", [])],
            kb_offers=[KBOffer(**offer) for offer in st.get("offers", [])][:10],
            ask_id=int(st["ask_id"]) if st.get("ask_id") else None,
        )
        created = await self.backend.create_ticket(
            draft, ctx.requester, idempotency_key=ctx.idempotency_key
        )
        self._reset_flow(st)
        for key in ("question", "service", "offers", "transcript"):
            st.pop(key, None)
        st["ticket"] = created.reference
        values = {"reference": created.reference, "city": created.responsible_city_name}
        if created.first_response_due is not None:
            text = t(
                "ticket_created", lang, due=format_due(created.first_response_due, lang), **values
            )
        else:
            text = t("ticket_created_no_due", lang, **values)
        return [Reply(text)]

    # --- documents --------------------------------------------------------------------------

    async def _document(
        self,
        st: State,
        ctx: Context,
        filename: str,
        size: int | None,
        content_type: str,
        fetch: Callable[[], Awaitable[bytes]],
    ) -> list[Reply]:
        lang = st["lang"]
        reference = st.get("ticket")
        if not reference:
            return [Reply(t("document_no_ticket", lang))]
        too_large = Reply(
            t("document_too_large", lang, limit=size_in_words(self.max_document_bytes, lang))
        )
        if size is not None and size > self.max_document_bytes:
            return [too_large]
        content = await fetch()
        if len(content) > self.max_document_bytes:
            return [too_large]
        try:
            info = await self.backend.add_attachment(
                reference, filename, content, content_type, idempotency_key=ctx.idempotency_key
            )
        except BackendError as exc:
            if exc.code == "attachment_too_large" or exc.status == 413:
                return [too_large]
            raise
        return [Reply(t("document_attached", lang, filename=info.filename, reference=reference))]
