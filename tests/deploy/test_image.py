"""The container image's contents: the wheel alone runs the whole application.

Docker is not needed: the test repeats the Dockerfile's steps (the builder stage's COPY list,
`pip wheel`, then `pip install --no-index` of those wheels into an empty virtual environment
outside the repository) and runs the installed `hotline` command the way the image does. So
a template, static file, migration or KB data file left out of the wheel fails here, not in
a city's data centre. pip uses its configured package index (and its cache).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from tests.conftest import PG_URL, pg_schema_url
from tests.deploy.files import DOCKERFILE, ROOT

pytestmark = pytest.mark.slow

PACKAGES = ("hotline", "bot", "kb", "migrations")
STATIC_LINK = re.compile(r'(?:src|href)="(/static/[^"?#]+)')


@dataclass
class Installed:
    venv: Path
    wheel: Path
    workdir: Path

    @property
    def hotline(self) -> str:
        return str(self.venv / "bin" / "hotline")

    def env(self, **overrides: str) -> dict[str, str]:
        """A clean environment: none of the developer's Hotline settings leak in."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("HOTLINE_", "TELEGRAM_"))
            and k not in ("PYTHONPATH", "VIRTUAL_ENV")
        }
        env.update(
            HOTLINE_DATABASE_URL=f"sqlite:///{self.workdir / 'hotline.db'}",
            HOTLINE_HOST="127.0.0.1",
            PYTHONDONTWRITEBYTECODE="1",
            PYTHONUNBUFFERED="1",
        )
        env.update(overrides)
        return env

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.hotline, *args],
            cwd=self.workdir,
            env=self.env(**env),
            capture_output=True,
            text=True,
            timeout=120,
        )


def builder_sources() -> list[str]:
    """What the Dockerfile's first (builder) stage copies into the build."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    stages = re.split(r"^FROM\s", text, flags=re.MULTILINE)
    assert len(stages) >= 3, "expected a builder and a runtime stage"
    sources: list[str] = []
    for line in stages[1].splitlines():
        parts = line.split()
        if parts and parts[0] == "COPY" and not any(p.startswith("--from") for p in parts):
            sources.extend(p.rstrip("/") for p in parts[1:-1] if not p.startswith("--"))
    return sources


def pip(*args: str | Path, python: str | Path = sys.executable) -> None:
    result = subprocess.run(
        [str(python), "-m", "pip", "--disable-pip-version-check", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    base = tmp_path_factory.mktemp("image")
    src, wheels, venv, workdir = (base / n for n in ("src", "wheels", "venv", "app"))
    src.mkdir()
    workdir.mkdir()
    for name in builder_sources():
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(path, src / name)
    # Stage 1: `pip wheel --wheel-dir /wheels .`
    pip("wheel", "--quiet", "--wheel-dir", wheels, src)
    # Stage 2: `pip install --no-index --find-links /wheels hotline` into a bare Python.
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    pip(
        "install",
        "--quiet",
        "--no-index",
        "--find-links",
        wheels,
        "hotline",
        python=venv / "bin" / "python",
    )
    [wheel] = wheels.glob("hotline-*.whl")
    return Installed(venv=venv, wheel=wheel, workdir=workdir)


def test_wheel_holds_every_file_of_the_packages(installed: Installed) -> None:
    in_wheel = set(zipfile.ZipFile(installed.wheel).namelist())
    in_source = {
        path.relative_to(ROOT).as_posix()
        for package in PACKAGES
        for path in (ROOT / package).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }
    assert len(in_source) > 300
    assert sorted(in_source - in_wheel) == []
    # Not left to chance: the licences of the vendored JavaScript and the demo data.
    assert "hotline/web/static/vendor/htmx/LICENSE" in in_wheel
    assert "hotline/demo/data/LICENSE-EUPL-1.2" in in_wheel


def test_installed_package_runs_from_the_virtual_environment(installed: Installed) -> None:
    result = subprocess.run(
        [str(installed.venv / "bin" / "python"), "-c",
         "import json, hotline, bot, kb, migrations; "
         "print(json.dumps([m.__file__ for m in (hotline, bot, kb, migrations)]))"],
        cwd=installed.workdir, env=installed.env(), capture_output=True, text=True, check=True,
    )  # fmt: skip
    for path in json.loads(result.stdout):
        assert Path(path).is_relative_to(installed.venv), path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serving(installed: Installed, **env: str) -> Iterator[str]:
    """`hotline serve` as in the image (production, a real secret) until the block ends."""
    port = free_port()
    log = installed.workdir / f"serve-{port}.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [installed.hotline, "serve"],
            cwd=installed.workdir,
            env=installed.env(
                HOTLINE_ENV="production",
                HOTLINE_SECRET_KEY=secrets.token_urlsafe(48),
                HOTLINE_PORT=str(port),
                **env,
            ),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.3)
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def server(installed: Installed) -> Iterator[str]:
    """A migrated SQLite database with the demo data, served as in the image."""
    migrated = installed.run("db", "upgrade")
    assert migrated.returncode == 0, migrated.stderr
    # The image defaults to production, where demo data is refused with a reason.
    refused = installed.run("demo", "--if-empty", HOTLINE_ENV="production",
                            HOTLINE_SECRET_KEY=secrets.token_urlsafe(48))  # fmt: skip
    assert refused.returncode == 1 and "production" in refused.stderr
    demo = installed.run("demo", "--if-empty", HOTLINE_ENV="development")
    assert demo.returncode == 0, demo.stderr
    with serving(installed) as base:
        yield base


def assert_static_links_load(client: httpx.Client, html: str) -> None:
    links = set(STATIC_LINK.findall(html))
    assert links, "the page links no static files"
    for link in links:
        response = client.get(link)
        assert response.status_code == 200 and response.content, link


def test_ready_and_the_web_chat_with_its_static_files(installed: Installed, server: str) -> None:
    with httpx.Client(base_url=server, timeout=10) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "ready"
        chat = client.get("/")
        assert chat.status_code == 200 and "<form" in chat.text
        assert_static_links_load(client, chat.text)
        assert client.get("/static/vendor/htmx/htmx.min.js").status_code == 200


def test_board_login_and_inbox_render(installed: Installed, server: str) -> None:
    with httpx.Client(base_url=server, timeout=10) as client:
        login = client.get("/board/login")
        assert login.status_code == 200
        match = re.search(r'name="csrf" value="([^"]+)"', login.text)
        assert match
        answer = client.post(
            "/board/login",
            data={"csrf": match.group(1), "username": "admin.muenchen", "password": "hotline-demo"},
        )
        assert answer.status_code in (302, 303), answer.text[:500]
        inbox = client.get(answer.headers["location"], follow_redirects=True)
        assert inbox.status_code == 200 and "/login" not in inbox.url.path, inbox.url
        assert "admin.muenchen" in inbox.text or "München" in inbox.text
        assert_static_links_load(client, inbox.text)


def test_knowledge_base_answers_from_the_installed_data(installed: Installed, server: str) -> None:
    tokens = dict(
        line.split("\t", 1)
        for line in (installed.workdir / "var" / "demo-tokens.txt").read_text().splitlines()
        if "\t" in line
    )
    response = httpx.post(
        f"{server}/api/v1/kb/ask",
        headers={"Authorization": f"Bearer {tokens['network'].strip()}"},
        json={
            "question": "Wo hole ich in München meinen neuen Personalausweis ab?",
            "city": "muenchen",
        },
        timeout=10,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["decision"] == "answer" and body["entry"]["id"] == "ausweis-abholung-muenchen"


def test_worker_starts_and_stops_on_sigterm(installed: Installed) -> None:
    with subprocess.Popen(
        [installed.hotline, "worker"],
        cwd=installed.workdir,
        env=installed.env(HOTLINE_ENV="production", HOTLINE_SECRET_KEY=secrets.token_urlsafe(48)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            first = proc.stdout.readline()
            assert "Worker" in first, first
            time.sleep(1.5)
            assert proc.poll() is None, proc.stdout.read()
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()


def test_postgresql_driver_and_migrations_work_from_the_image(installed: Installed) -> None:
    """Production runs on PostgreSQL: the installed psycopg migrates and serves a schema."""
    if not PG_URL:
        pytest.skip("PostgreSQL run: set HOTLINE_TEST_DATABASE_URL (CI does)")
    schema = f"hl_image_{secrets.token_hex(5)}"
    admin = sa.create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = pg_schema_url(PG_URL, schema)
    try:
        migrated = installed.run("db", "upgrade", HOTLINE_DATABASE_URL=url)
        assert migrated.returncode == 0, migrated.stderr
        current = installed.run("db", "current", HOTLINE_DATABASE_URL=url)
        assert current.returncode == 0, current.stderr
        revisions = re.findall(r"(?:current|head): (\S+)", current.stdout)
        assert len(revisions) == 2 and revisions[0] == revisions[1], current.stdout
        with serving(installed, HOTLINE_DATABASE_URL=url) as base:
            ready = httpx.get(f"{base}/readyz", timeout=10)
        assert ready.status_code == 200, ready.text
        assert ready.json()["database"] == "postgresql"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
