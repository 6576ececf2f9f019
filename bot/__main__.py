"""`python -m bot`: run the Telegram bot with long polling (same as `hotline bot`)."""

from __future__ import annotations

import asyncio
import logging

from bot.app import run_polling
from hotline.settings import get_settings


def main() -> None:
    settings = get_settings()
    logging.basicConfig(level=settings.log_level)
    asyncio.run(run_polling(settings))


if __name__ == "__main__":
    main()
