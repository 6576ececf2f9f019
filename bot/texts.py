"""Every text the citizen sees in the bot and the web chat, German first, English second."""

from __future__ import annotations

from typing import Literal

Language = Literal["de", "en"]

_USAGE_DE = (
    "So funktioniert es:\n"
    "• Schreiben Sie Ihre Frage einfach in den Chat.\n"
    "• /stadt – Ihre Stadt angeben oder ändern\n"
    "• /status – Ihre Anfragen und ihr Bearbeitungsstand\n"
    "• /neu – eine neue Frage stellen\n"
    "• /loeschen – Ihre Daten löschen\n"
    "• /hilfe – diese Hilfe"
)
_USAGE_EN = (
    "How it works:\n"
    "• Just type your question into the chat.\n"
    "• /stadt – tell me or change your city\n"
    "• /status – your requests and where they stand\n"
    "• /neu – ask a new question\n"
    "• /loeschen – delete your data\n"
    "• /hilfe – this help"
)

TEXTS: dict[str, dict[Language, str]] = {
    "welcome": {
        "de": (
            "Grüß Gott! Ich bin der digitale Assistent der gemeinsamen Service-Hotline von "
            "München, Augsburg und Nürnberg für Online-Dienste wie BayernID, Online-Ausweis, "
            "ePayment und Online-Anträge.\n\n"
            "Datenschutz: Wir speichern Ihre Fragen, und wenn Sie eine Anfrage an die Hotline "
            "geben, die Anfrage mit dem Gesprächsverlauf und – nur wenn Sie sie angeben – Ihrer "
            "E-Mail-Adresse. Abgeschlossene Anfragen werden nach 180 Tagen anonymisiert, "
            "Gesprächsprotokolle ohne Anfrage nach 30 Tagen gelöscht. Mit /loeschen können Sie "
            "Ihre Daten jederzeit löschen.\n\n" + _USAGE_DE
        ),
        "en": (
            "Hello! I am the digital assistant of the shared service hotline of Munich, Augsburg "
            "and Nuremberg for online services such as BayernID, the online ID, ePayment and "
            "online applications.\n\n"
            "Privacy: we store your questions and, if you pass a request to the hotline, the "
            "request with the conversation and – only if you give it – your e-mail address. "
            "Closed requests are anonymised after 180 days, conversation logs without a request "
            "are deleted after 30 days. You can delete your data at any time with /loeschen.\n\n"
            + _USAGE_EN
        ),
    },
    "help": {"de": _USAGE_DE, "en": _USAGE_EN},
    "ask_city": {
        "de": "In welcher Stadt wohnen oder arbeiten Sie? Tippen Sie auf Ihre Stadt oder "
        "schreiben Sie Ihre fünfstellige Postleitzahl.",
        "en": "Which city do you live or work in? Tap your city or type your five-digit postcode.",
    },
    "ask_city_first": {
        "de": "Bevor ich antworte: In welcher Stadt wohnen oder arbeiten Sie? Tippen Sie auf Ihre "
        "Stadt oder schreiben Sie Ihre fünfstellige Postleitzahl.",
        "en": "Before I answer: which city do you live or work in? Tap your city or type your "
        "five-digit postcode.",
    },
    "ask_city_handover": {
        "de": "Damit die richtige Stadt Ihre Anfrage bearbeitet: In welcher Stadt wohnen oder "
        "arbeiten Sie? Tippen Sie auf Ihre Stadt oder schreiben Sie Ihre Postleitzahl.",
        "en": "So that the right city handles your request: which city do you live or work in? "
        "Tap your city or type your postcode.",
    },
    "city_other_button": {"de": "Andere Stadt", "en": "Other city"},
    "city_skip_button": {"de": "Ohne Angabe weiter", "en": "Continue without"},
    "ask_postcode": {
        "de": "Bitte schreiben Sie Ihre fünfstellige Postleitzahl, zum Beispiel 86150.",
        "en": "Please type your five-digit postcode, for example 86150.",
    },
    "postcode_unknown": {
        "de": "Die Postleitzahl {postcode} gehört zu keiner Stadt unseres Verbunds. Sie können "
        "trotzdem ohne Angabe weitermachen – die Hotline hilft Ihnen auch dann.",
        "en": "The postcode {postcode} does not belong to any city of our network. You can still "
        "continue without – the hotline will help you anyway.",
    },
    "postcode_invalid": {
        "de": "Eine Postleitzahl hat fünf Ziffern, zum Beispiel 80331. Bitte versuchen Sie es "
        "noch einmal oder tippen Sie auf eine Stadt.",
        "en": "A postcode has five digits, for example 80331. Please try again or tap a city.",
    },
    "city_set": {
        "de": "Danke, ich habe mir {city} gemerkt. Mit /stadt können Sie das ändern.",
        "en": "Thank you, I have noted {city}. You can change it with /stadt.",
    },
    "city_skipped": {
        "de": "In Ordnung, ohne Stadt. Mit /stadt können Sie sie später angeben.",
        "en": "All right, without a city. You can add it later with /stadt.",
    },
    "ask_question": {
        "de": "Wie kann ich helfen? Schreiben Sie Ihre Frage in einem Satz.",
        "en": "How can I help? Type your question in one sentence.",
    },
    "helped_question": {"de": "Hat das geholfen?", "en": "Did that help?"},
    "yes": {"de": "Ja", "en": "Yes"},
    "no": {"de": "Nein", "en": "No"},
    "helped_thanks": {
        "de": "Schön, dass ich helfen konnte! Sie können jederzeit eine weitere Frage stellen.",
        "en": "Glad I could help! You can ask another question at any time.",
    },
    "suggest_intro": {
        "de": "Meinten Sie eines davon? Tippen Sie auf das passende Thema.",
        "en": "Did you mean one of these? Tap the matching topic.",
    },
    "nothing_fits": {"de": "Nichts davon", "en": "None of these"},
    "other_body_note": {
        "de": "Ihre Frage scheint eine andere Stelle zu betreffen ({bodies}). Dafür sind die "
        "Städte nicht zuständig – bitte wenden Sie sich direkt dorthin. Falls es doch um einen "
        "Online-Dienst Ihrer Stadt geht, helfe ich gern weiter.",
        "en": "Your question seems to concern another body ({bodies}). The cities are not "
        "responsible for that – please contact it directly. If it is about an online service "
        "of your city after all, I am glad to help.",
    },
    "and": {"de": "und", "en": "and"},
    "handover_offer": {
        "de": "Dazu habe ich leider keine passende Antwort. Soll ich Ihre Frage an die Hotline "
        "weitergeben? Dort antworten Ihnen Mitarbeiterinnen und Mitarbeiter der zuständigen "
        "Stadt.",
        "en": "I am sorry, I have no fitting answer. Shall I pass your question to the hotline? "
        "Staff of the responsible city will answer you there.",
    },
    "handover_offer_after_no": {
        "de": "Das tut mir leid. Soll ich Ihre Frage an die Hotline weitergeben? Dort antworten "
        "Ihnen Mitarbeiterinnen und Mitarbeiter der zuständigen Stadt.",
        "en": "I am sorry. Shall I pass your question to the hotline? Staff of the responsible "
        "city will answer you there.",
    },
    "handover_yes": {"de": "Ja, an die Hotline", "en": "Yes, to the hotline"},
    "handover_declined": {
        "de": "In Ordnung. Sie können Ihre Frage gern mit anderen Worten noch einmal stellen.",
        "en": "All right. Feel free to ask your question again in other words.",
    },
    "ask_service": {
        "de": "Um welchen Online-Dienst geht es?",
        "en": "Which online service is it about?",
    },
    "service_unknown": {"de": "Weiß nicht", "en": "Don't know"},
    "ask_email": {
        "de": "Die Antwort der Hotline erhalten Sie hier im Chat. Wenn wir Sie zusätzlich per "
        "E-Mail erreichen dürfen, schreiben Sie Ihre E-Mail-Adresse – sonst tippen Sie auf "
        "„Überspringen“.",
        "en": "You will get the hotline's answer here in the chat. If we may also contact you "
        "by e-mail, type your e-mail address – otherwise tap “Skip”.",
    },
    "email_skip": {"de": "Überspringen", "en": "Skip"},
    "email_invalid": {
        "de": "„{email}“ sieht nicht wie eine E-Mail-Adresse aus (Beispiel: name@example.de). "
        "Bitte prüfen Sie die Schreibweise oder tippen Sie auf „Überspringen“.",
        "en": "“{email}” does not look like an e-mail address (example: name@example.org). "
        "Please check it or tap “Skip”.",
    },
    "ticket_created": {
        "de": "Ihre Anfrage ist bei der Hotline eingegangen.\n"
        "Aktenzeichen: {reference}\n"
        "Zuständig: {city}\n"
        "Eine erste Antwort erhalten Sie bis {due} hier im Chat.\n\n"
        "Weitere Nachrichten, die Sie hier schreiben, hänge ich an diese Anfrage an. "
        "Mit /neu stellen Sie eine neue Frage.",
        "en": "Your request has reached the hotline.\n"
        "Reference: {reference}\n"
        "Responsible: {city}\n"
        "You will get a first answer here in the chat by {due}.\n\n"
        "Further messages you write here will be added to this request. "
        "Use /neu to ask a new question.",
    },
    "ticket_created_no_due": {
        "de": "Ihre Anfrage ist bei der Hotline eingegangen.\n"
        "Aktenzeichen: {reference}\n"
        "Zuständig: {city}\n"
        "Wir antworten Ihnen so bald wie möglich hier im Chat.\n\n"
        "Weitere Nachrichten, die Sie hier schreiben, hänge ich an diese Anfrage an. "
        "Mit /neu stellen Sie eine neue Frage.",
        "en": "Your request has reached the hotline.\n"
        "Reference: {reference}\n"
        "Responsible: {city}\n"
        "We will answer you here in the chat as soon as possible.\n\n"
        "Further messages you write here will be added to this request. "
        "Use /neu to ask a new question.",
    },
    "due_format": {"de": "{date}, {time} Uhr", "en": "{date}, {time}"},
    "followup_added": {
        "de": "Danke, ich habe Ihre Nachricht an die Anfrage {reference} angehängt.",
        "en": "Thank you, I have added your message to request {reference}.",
    },
    "ticket_closed_new_question": {
        "de": "Ihre Anfrage {reference} ist bereits abgeschlossen. Ich behandle Ihre Nachricht "
        "deshalb als neue Frage.",
        "en": "Your request {reference} is already closed, so I will treat your message as a new "
        "question.",
    },
    "attached_reminder": {
        "de": "Ihre Nachrichten gehen an die Anfrage {reference}. Mit /neu stellen Sie eine "
        "neue Frage.",
        "en": "Your messages go to request {reference}. Use /neu to ask a new question.",
    },
    "new_question": {
        "de": "Gern – stellen Sie Ihre neue Frage.",
        "en": "Sure – ask your new question.",
    },
    "status_header": {"de": "Ihre Anfragen:", "en": "Your requests:"},
    "status_line": {
        "de": "• {reference} – {status} – {city}",
        "en": "• {reference} – {status} – {city}",
    },
    "status_empty": {
        "de": "Sie haben bisher keine Anfragen an die Hotline gestellt.",
        "en": "You have not sent any requests to the hotline yet.",
    },
    "erase_confirm": {
        "de": "Möchten Sie Ihre Daten wirklich löschen? Ihre gespeicherten Fragen werden "
        "gelöscht und Ihre Anfragen anonymisiert; offene Anfragen können wir Ihnen danach "
        "nicht mehr beantworten.",
        "en": "Do you really want to delete your data? Your stored questions will be deleted and "
        "your requests anonymised; we cannot answer open requests afterwards.",
    },
    "erase_yes": {"de": "Ja, löschen", "en": "Yes, delete"},
    "erase_no": {"de": "Nein, behalten", "en": "No, keep"},
    "erase_done": {
        "de": "Erledigt: {tickets} Anfrage(n) anonymisiert und {asks} gespeicherte Frage(n) "
        "gelöscht. Dieses Gespräch beginnt von vorn.",
        "en": "Done: {tickets} request(s) anonymised and {asks} stored question(s) deleted. "
        "This conversation starts afresh.",
    },
    "erase_cancelled": {
        "de": "In Ordnung, es wurde nichts gelöscht.",
        "en": "All right, nothing was deleted.",
    },
    "rating_thanks": {
        "de": "Vielen Dank für Ihre Bewertung ({rating} von 5)!",
        "en": "Thank you for your rating ({rating} out of 5)!",
    },
    "rating_not_resolved": {
        "de": "Bewerten können Sie, sobald Ihre Anfrage {reference} erledigt ist.",
        "en": "You can rate request {reference} once it has been resolved.",
    },
    "rating_unknown": {
        "de": "Diese Anfrage kann ich Ihnen nicht zuordnen.",
        "en": "I cannot find this request for you.",
    },
    "too_long": {
        "de": "Ihre Nachricht ist leider zu lang (höchstens {limit} Zeichen). Bitte fassen Sie "
        "sich kürzer oder teilen Sie sie auf mehrere Nachrichten auf.",
        "en": "Sorry, your message is too long (at most {limit} characters). Please shorten it "
        "or split it into several messages.",
    },
    "empty_text": {
        "de": "Bitte schreiben Sie Ihre Frage als Text.",
        "en": "Please type your question as text.",
    },
    "not_text": {
        "de": "Ich kann leider nur Textnachrichten lesen – keine Fotos, Sprachnachrichten, "
        "Sticker, Videos oder Standorte. Bitte schreiben Sie Ihre Frage als Text. Dokumente "
        "(z. B. PDF) können Sie an eine bestehende Anfrage anhängen.",
        "en": "Sorry, I can only read text messages – no photos, voice messages, stickers, videos "
        "or locations. Please type your question. Documents (e.g. PDF) can be attached to an "
        "existing request.",
    },
    "document_no_ticket": {
        "de": "Dokumente kann ich nur an eine Anfrage an die Hotline anhängen. Stellen Sie "
        "zuerst Ihre Frage; wenn ich sie an die Hotline weitergebe, können Sie das Dokument "
        "danach schicken.",
        "en": "I can only attach documents to a request to the hotline. Ask your question first; "
        "once I have passed it to the hotline, you can send the document.",
    },
    "document_too_large": {
        "de": "Das Dokument ist zu groß (höchstens {limit}). Bitte schicken Sie eine kleinere "
        "Datei.",
        "en": "The document is too large (at most {limit}). Please send a smaller file.",
    },
    "document_attached": {
        "de": "Danke, ich habe „{filename}“ an die Anfrage {reference} angehängt.",
        "en": "Thank you, I have attached “{filename}” to request {reference}.",
    },
    "rate_limited": {
        "de": "Sie schreiben gerade sehr schnell hintereinander. Bitte warten Sie eine Minute; "
        "bis dahin kann ich keine weiteren Nachrichten bearbeiten.",
        "en": "You are writing very fast. Please wait a minute; until then I cannot handle "
        "further messages.",
    },
    "stale_button": {
        "de": "Diese Auswahl ist nicht mehr aktuell. Schreiben Sie einfach Ihre Frage.",
        "en": "This choice is no longer current. Just type your question.",
    },
    "backend_unavailable": {
        "de": "Der Dienst ist gerade nicht erreichbar. Bitte versuchen Sie es in ein paar "
        "Minuten noch einmal.",
        "en": "The service is not reachable right now. Please try again in a few minutes.",
    },
    "error_generic": {
        "de": "Das hat leider nicht geklappt. Bitte versuchen Sie es noch einmal; wenn es wieder "
        "nicht klappt, starten Sie mit /neu von vorn.",
        "en": "Sorry, that did not work. Please try again; if it fails again, start afresh with "
        "/neu.",
    },
    "delivery_reply": {
        "de": "Antwort der Hotline zu {reference}:\n\n{text}",
        "en": "Reply from the hotline on {reference}:\n\n{text}",
    },
    "delivery_status": {
        "de": "Ihre Anfrage {reference}: {status}.",
        "en": "Your request {reference}: {status}.",
    },
    "delivery_rate": {
        "de": "Wie zufrieden waren Sie mit der Bearbeitung? 1 = gar nicht, 5 = sehr.",
        "en": "How satisfied were you with how it was handled? 1 = not at all, 5 = very.",
    },
    # Ticket status in words.
    "status.new": {"de": "eingegangen", "en": "received"},
    "status.open": {"de": "in Bearbeitung", "en": "in progress"},
    "status.waiting": {"de": "wartet auf Ihre Rückmeldung", "en": "waiting for your reply"},
    "status.resolved": {"de": "erledigt", "en": "resolved"},
    "status.closed": {"de": "abgeschlossen", "en": "closed"},
    "status.reopened": {"de": "wieder in Bearbeitung", "en": "reopened"},
    "status.unknown": {"de": "in Bearbeitung", "en": "in progress"},
    "no_city": {"de": "noch offen", "en": "not yet decided"},
    # --- web chat page (hotline/web) ---
    "web_title": {
        "de": "Hotline – Online-Dienste der Städte",
        "en": "Hotline – the cities' online services",
    },
    "web_heading": {
        "de": "Fragen zu den Online-Diensten",
        "en": "Questions about the online services",
    },
    "web_intro": {
        "de": "Gemeinsame Hotline von München, Augsburg und Nürnberg. Der Bot beantwortet, "
        "was er weiß, und gibt Ihre Frage sonst an die zuständige Stadt weiter.",
        "en": "Shared hotline of Munich, Augsburg and Nuremberg. The bot answers what it "
        "knows and otherwise passes your question to the responsible city.",
    },
    "web_log_label": {"de": "Gesprächsverlauf", "en": "Conversation"},
    "web_you": {"de": "Sie", "en": "You"},
    "web_bot": {"de": "Hotline", "en": "Hotline"},
    "web_input_label": {"de": "Ihre Nachricht", "en": "Your message"},
    "web_input_hint": {
        "de": "Befehle: /stadt, /status, /neu, /loeschen, /hilfe",
        "en": "Commands: /stadt (city), /status, /neu (new), /loeschen (delete), /hilfe (help)",
    },
    "web_send": {"de": "Senden", "en": "Send"},
    "web_other_language": {"de": "English", "en": "Deutsch"},
    "web_expired": {
        "de": "Die Seite ist abgelaufen. Bitte laden Sie sie neu.",
        "en": "This page has expired. Please reload it.",
    },
    "web_choices": {"de": "Auswahl", "en": "Choices"},
    "web_privacy_link": {
        "de": "Datenschutz: /loeschen löscht Ihre Daten",
        "en": "Privacy: /loeschen deletes your data",
    },
}


def language_for(code: str | None) -> Language:
    """The language for a client's language code: English for "en…", German otherwise."""
    return "en" if code and code.lower().startswith("en") else "de"


def t(key: str, lang: str = "de", **values: object) -> str:
    """The text `key` in `lang` (German when unknown), with `values` filled in."""
    variants = TEXTS[key]
    text = variants["en"] if lang == "en" else variants["de"]
    return text.format(**values) if values else text


def status_name(status: str, lang: str = "de") -> str:
    """A ticket status in words."""
    key = f"status.{status}"
    return t(key if key in TEXTS else "status.unknown", lang)


def size_in_words(size: int, lang: str = "de") -> str:
    """A byte count the way people read it (5 MB, 512 KB)."""
    if size >= 1_000_000:
        value = f"{size / 1_000_000:.1f}".rstrip("0").rstrip(".")
        return f"{value.replace('.', ',') if lang == 'de' else value} MB"
    return f"{max(1, size // 1000)} KB"
