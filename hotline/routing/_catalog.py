"""Look-ups in a rule set's catalogue: cities by key, services by key or LeiKa key."""

from __future__ import annotations

from collections.abc import Iterable

from hotline.routing._models import CityInfo, ServiceInfo

AUDIENCE_DE = {"external": "extern", "internal": "intern"}


class Catalog:
    """Cities and services of one rule set, indexed for constant-time look-ups."""

    def __init__(self, cities: Iterable[CityInfo], services: Iterable[ServiceInfo]) -> None:
        self.cities: dict[str, CityInfo] = {}
        for city in cities:
            self.cities.setdefault(city.key, city)
        self.services: dict[str, ServiceInfo] = {}
        self._alias: dict[str, str] = {}
        # Real catalogues give one LeiKa key to several local services (Munich has two
        # "Beglaubigung" services under 99014002035000): a LeiKa key in a rule names them all.
        self._by_leika: dict[str, set[str]] = {}
        for service in services:
            self.services.setdefault(service.key, service)
        # Keys win over LeiKa keys so that a service key never changes meaning by an import.
        for service in self.services.values():
            if service.leika:
                self._alias.setdefault(service.leika, service.key)
                self._by_leika.setdefault(service.leika, set()).add(service.key)
        for key in self.services:
            self._alias[key] = key
        self.topics: set[str] = {s.topic for s in self.services.values() if s.topic}

    def city(self, key: str | None) -> CityInfo | None:
        return None if key is None else self.cities.get(key)

    def is_active(self, key: str | None) -> bool:
        city = self.city(key)
        return city is not None and city.active

    def city_name(self, key: str) -> str:
        city = self.cities.get(key)
        return city.name if city else key

    def service_key(self, name: str) -> str | None:
        """The service key for a key or LeiKa key; None when the catalogue does not know it."""
        return self._alias.get(name)

    def service_keys(self, name: str) -> frozenset[str]:
        """Every service a rule's service name covers: the key itself, or all of a LeiKa key."""
        if name in self.services:
            return frozenset({name})
        return frozenset(self._by_leika.get(name, ()))

    def service(self, name: str | None) -> ServiceInfo | None:
        if name is None:
            return None
        key = self._alias.get(name)
        return None if key is None else self.services[key]

    def service_name(self, name: str) -> str:
        service = self.service(name)
        return service.name if service else name
