"""Who is acting: a staff user, an API token or the system, and what they may see."""

from __future__ import annotations

from dataclasses import dataclass

from hotline.models import Role


@dataclass(frozen=True, slots=True)
class Actor:
    """The caller of a service function; `city_id` None means the whole network."""

    label: str
    city_id: int | None
    network: bool
    staff_id: int | None = None
    token_id: int | None = None
    role: Role | None = None

    @classmethod
    def system(cls) -> Actor:
        return cls(label="system", city_id=None, network=True)

    def can_see_city(self, city_id: int | None) -> bool:
        return self.network or (city_id is not None and city_id == self.city_id)

    @property
    def scope(self) -> str:
        """Key that separates clients, e.g. for idempotency keys."""
        if self.token_id is not None:
            return f"token:{self.token_id}"
        if self.staff_id is not None:
            return f"staff:{self.staff_id}"
        return "system"
