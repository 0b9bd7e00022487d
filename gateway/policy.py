"""Who may do what: pure decisions over roles, grants and each network's sharing policy."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from .models import Role
from .settings import Settings

ALL_NETWORKS = "*"


class Permission(StrEnum):
    read_cameras = "read cameras"
    write_cameras = "change cameras"
    read_networks = "read networks"
    read_audit = "read the audit log"
    read_metrics = "read metrics"
    snapshot = "request snapshots"
    discover = "start discovery"
    read_history = "read camera histories"


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.viewer: frozenset(
        {Permission.read_cameras, Permission.read_networks, Permission.read_metrics}
    ),
    Role.operator: frozenset(
        {
            Permission.read_cameras,
            Permission.read_networks,
            Permission.read_metrics,
            Permission.snapshot,
        }
    ),
    Role.admin: frozenset(
        {
            Permission.read_cameras,
            Permission.write_cameras,
            Permission.read_networks,
            Permission.read_metrics,
            Permission.snapshot,
            Permission.discover,
            Permission.read_history,
        }
    ),
    # Separation of duties: auditors read the trail, not the cameras; admins do not read the trail.
    # Both read a camera's lifecycle history (who changed what, when; no picture, no address).
    Role.auditor: frozenset(
        {
            Permission.read_audit,
            Permission.read_networks,
            Permission.read_metrics,
            Permission.read_history,
        }
    ),
}


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller: who, in which role, seeing which networks (None = all)."""

    token_id: str
    name: str
    role: Role
    networks: frozenset[str] | None

    @property
    def actor(self) -> str:
        return f"{self.name}#{self.token_id}"

    def can(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self.role]

    def sees(self, network: str) -> bool:
        return self.networks is None or network in self.networks

    def visible(self, settings: Settings) -> tuple[str, ...]:
        return tuple(n.id for n in settings.networks if self.sees(n.id))

    @property
    def full_records(self) -> bool:
        """Admins see whole records; everyone else what each network's owner shares."""
        return self.role is Role.admin


def parse_grants(networks: list[str]) -> frozenset[str] | None:
    return None if ALL_NETWORKS in networks else frozenset(networks)
