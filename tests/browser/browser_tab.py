"""A signed-in browser tab on the live app, and what its console complained about."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coursedesk.accounts.roles import Role

# Generous waits: the machine running the tests may be busy with other work.
WAIT_MS = 30_000
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
PASSWORD = "correct horse battery staple"
STAFF_NAMES = {Role.viewer: "vera", Role.operator: "olga", Role.admin: "ada"}
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
# A student with a name no generated one has, so that a search finds exactly them.
ZOYA = 9_000_001


@dataclass
class Console:
    """What the browser complained about: console errors, page errors, foreign requests."""

    errors: list[str] = field(default_factory=list)
    foreign_requests: list[str] = field(default_factory=list)

    def take(self, pattern: str) -> list[str]:
        """Remove and answer the errors matching `pattern` (ones a test expects)."""
        taken = [error for error in self.errors if re.search(pattern, error)]
        self.errors = [error for error in self.errors if error not in taken]
        return taken


@dataclass
class Tab:
    page: Any
    console: Console
    base_url: str

    async def open(self, path: str) -> Any:
        response = await self.page.goto(self.base_url + path)
        await self.page.wait_for_load_state("networkidle")
        return response

    async def sign_in(self, role: Role, password: str = PASSWORD) -> None:
        await self.open("/login")
        await self.page.get_by_label("Username").fill(STAFF_NAMES[role])
        await self.page.get_by_label("Password").fill(password)
        await self.page.get_by_role("button", name="Sign in").click()
        await self.page.wait_for_load_state("networkidle")

    async def screenshot(self, name: str, *, full_page: bool = True) -> Path:
        """Keep what the page looks like now, for people to look at."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        await self.page.screenshot(path=str(path), full_page=full_page)
        return path


OpenTab = Callable[..., Awaitable[Tab]]
