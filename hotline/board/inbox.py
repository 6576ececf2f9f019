"""Board pages: the inbox (to be built)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from hotline.board._core import ViewerDep, render

router = APIRouter()


@router.get("/", response_class=HTMLResponse)
async def home(request: Request, viewer: ViewerDep) -> HTMLResponse:
    return render(request, viewer, "home.html")
