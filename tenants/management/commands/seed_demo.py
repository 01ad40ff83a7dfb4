"""Demo data for `make run` (idempotent): an operator and the three tenants from product.md,
with a user for every role. Later apps add their part through settings.DEMO_SEED_HOOKS,
each called inside the tenant's schema as hook(tenant=..., stdout=...)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils.module_loading import import_string
from django_tenants.utils import schema_context

from accounts import roles
from accounts.models import User
from accounts.services import roles_sync, user_create, user_set_roles
from core.tenancy import connection
from tenants.models import Domain, Tenant
from tenants.services import tenant_onboard

DEMO_PASSWORD = "demo-demo-2026"  # noqa: S105 - demo only; printed by `make run`
OPERATOR = ("operator", "operator@localhost")


@dataclass(frozen=True)
class DemoUser:
    username: str
    role: str
    first_name: str
    last_name: str


@dataclass(frozen=True)
class DemoTenant:
    schema: str
    name: str
    kind: str
    users: tuple[DemoUser, ...]

    @property
    def privacy_notice_url(self) -> str:
        return f"https://{self.schema}.example/datenschutz"


DEMO_TENANTS = (
    DemoTenant(
        "stuttgart",
        "Landeshauptstadt Stuttgart",
        Tenant.Kind.CITY,
        (
            DemoUser("admin", roles.ADMIN, "Alex", "Admin"),
            DemoUser("redaktion", roles.EDITOR, "Rita", "Redaktion"),
            DemoUser("oberbuergermeister", roles.APPROVER, "Otto", "Oberbürgermeister"),
            DemoUser("buergerbuero", roles.INBOX_AGENT, "Berta", "Bürgerbüro"),
        ),
    ),
    DemoTenant(
        "hochbahn",
        "Hamburger Hochbahn",
        Tenant.Kind.TRANSIT,
        (
            DemoUser("admin", roles.ADMIN, "Alex", "Admin"),
            DemoUser("leitstelle", roles.EDITOR, "Lena", "Leitstelle"),
            DemoUser("pressestelle", roles.APPROVER, "Paul", "Pressestelle"),
            DemoUser("kundendialog", roles.INBOX_AGENT, "Kim", "Kundendialog"),
        ),
    ),
    DemoTenant(
        "spd",
        "SPD Parteivorstand",
        Tenant.Kind.PARTY,
        (
            DemoUser("admin", roles.ADMIN, "Alex", "Admin"),
            DemoUser("autorin", roles.EDITOR, "Anna", "Autorin"),
            DemoUser("autor", roles.EDITOR, "Arne", "Autor"),
            DemoUser("vorstand", roles.APPROVER, "Vera", "Vorstand"),
            DemoUser("team", roles.INBOX_AGENT, "Tom", "Team"),
        ),
    ),
)


def demo_domain(schema: str) -> str:
    return f"{schema}.{settings.BASE_DOMAIN}"


class Command(BaseCommand):
    help = "Create or refresh the demo operator and tenants (stuttgart, hochbahn, spd)."

    def handle(self, *args: Any, **options: Any) -> None:
        self._operator()
        for demo in DEMO_TENANTS:
            tenant = self._tenant(demo)
            with schema_context(demo.schema):
                connection.set_tenant(tenant)
                self._users(demo)
                for hook in settings.DEMO_SEED_HOOKS:
                    import_string(hook)(tenant=tenant, stdout=self.stdout)
            connection.set_schema_to_public()
            self.stdout.write(f"{demo.schema}: ready at {demo_domain(demo.schema)}")

    def _operator(self) -> None:
        username, email = OPERATOR
        user = User.objects.filter(username=username).first()
        if user is None:
            user = User.objects.create_superuser(username=username, email=email, password=DEMO_PASSWORD)
        user.is_demo = True
        user.save(update_fields=["is_demo"])

    def _tenant(self, demo: DemoTenant) -> Tenant:
        tenant = Tenant.objects.filter(schema_name=demo.schema).first()
        if tenant is not None:
            domain = demo_domain(demo.schema)
            if not Domain.objects.filter(domain=domain).exists():
                Domain.objects.create(domain=domain, tenant=tenant, is_primary=not tenant.domains.exists())
            # the subscribe page requires a privacy notice link; keep one an operator has set
            Tenant.objects.filter(pk=tenant.pk, privacy_notice_url="").update(
                privacy_notice_url=demo.privacy_notice_url
            )
            return tenant
        result = tenant_onboard(
            schema_name=demo.schema,
            name=demo.name,
            domain=demo_domain(demo.schema),
            admin_email=f"admin@{demo.schema}.example",
            kind=demo.kind,
            admin_username="admin",
        )
        self.stdout.write(f"{demo.schema}: onboarded in {result.seconds:.2f}s")
        Tenant.objects.filter(pk=result.tenant.pk).update(privacy_notice_url=demo.privacy_notice_url)
        result.tenant.privacy_notice_url = demo.privacy_notice_url
        return result.tenant

    @transaction.atomic
    def _users(self, demo: DemoTenant) -> None:
        roles_sync()
        for spec in demo.users:
            user = User.objects.filter(username=spec.username).first()
            if user is None:
                user = user_create(
                    username=spec.username,
                    email=f"{spec.username}@{demo.schema}.example",
                    first_name=spec.first_name,
                    last_name=spec.last_name,
                    role_names=[spec.role],
                    password=DEMO_PASSWORD,
                    is_demo=True,
                )
            else:
                user_set_roles(user=user, role_names=[spec.role], actor=None)
            if not user.has_usable_password() or not user.is_demo:
                user.set_password(DEMO_PASSWORD)
                user.is_demo = True
                user.first_name, user.last_name = spec.first_name, spec.last_name
                user.save(update_fields=["password", "is_demo", "first_name", "last_name"])
