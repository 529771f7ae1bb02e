"""`gridmarket` command line: database, demo data, users, worker, routes."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from sqlalchemy import create_engine, pool, text

from geo_core.config import Settings, SettingsError

ROOT = Path(__file__).resolve().parents[1]


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc


def owner_engine(settings: Settings):  # noqa: ANN201
    return create_engine(settings.sa_database_url, poolclass=pool.NullPool)


def ensure_app_role(settings: Settings) -> None:
    """Create the RLS-bound login role the app connects as, if the owner may create roles."""
    role = settings.app_db_role
    with owner_engine(settings).connect() as conn:
        exists = conn.scalar(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role})
        if exists:
            bypass = conn.scalar(text("SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = :r"), {"r": role})
            if bypass:
                raise click.ClickException(f"role {role} bypasses row-level security; use a plain login role")
            return
        can = conn.scalar(text("SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user"))
        if not can:
            raise click.ClickException(
                f"role {role} does not exist and {conn.scalar(text('SELECT current_user'))} may not create it; "
                f"ask your DBA: CREATE ROLE {role} LOGIN NOSUPERUSER NOBYPASSRLS PASSWORD '...'"
            )
        password = settings.app_db_password.replace("'", "''")
        conn.execute(text(f"CREATE ROLE {role} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE "
                          f"PASSWORD '{password}'"))
        conn.commit()


def upgrade_database(settings: Settings, revision: str = "head") -> None:
    import os

    from alembic import command
    from alembic.config import Config

    from geo_core.catalog import sync_catalog
    from geo_core.db import make_session_factory

    ensure_app_role(settings)
    os.environ.setdefault("GM_APP_DB_ROLE", settings.app_db_role)
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.attributes["database_url"] = settings.sa_database_url
    command.upgrade(cfg, revision)
    if revision == "head":
        engine = owner_engine(settings)
        with make_session_factory(engine).begin() as session:
            sync_catalog(session)


@click.group()
def main() -> None:
    """GridMarket 网格化精准营销系统"""


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Create the app role if missing, run Alembic migrations, sync the built-in catalog."""
    upgrade_database(_settings(), revision)
    click.echo(f"database upgraded to {revision}")


@db.command("downgrade")
@click.argument("revision")
def db_downgrade(revision: str) -> None:
    """Migrate down to REVISION (e.g. base)."""
    from alembic import command
    from alembic.config import Config

    settings = _settings()
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.attributes["database_url"] = settings.sa_database_url
    command.downgrade(cfg, revision)


@main.command("seed-demo")
@click.option("--scale", type=click.Choice(["small", "city"]), default="small", show_default=True)
@click.option("--if-empty", is_flag=True, help="do nothing when the database already has organisations")
def seed_demo_cmd(scale: str, if_empty: bool) -> None:
    """Seed the Changsha demo (divisions, org tree, staff)."""
    from geo_core.db import make_session_factory
    from geo_core.seed.demo import DEMO_PASSWORD, demo_logins, is_seeded, seed_demo

    settings = _settings()
    with make_session_factory(owner_engine(settings)).begin() as session:
        if is_seeded(session):
            if if_empty:
                click.echo("demo data already present; not seeding")
                click.echo(f"demo password for every demo user: {DEMO_PASSWORD}")
                for username, role, org in demo_logins(session):
                    click.echo(f"  {username:<16} {role} @ {org}")
                return
            raise click.ClickException("the database already has organisations; seed an empty database")
        summary = seed_demo(session, scale, iterations=settings.pbkdf2_iterations, settings=settings)
    click.echo(f"seeded {summary.orgs} orgs, {summary.users} users, {summary.grids} grids, "
               f"{summary.customers} customers, {summary.divisions} divisions ({scale})")
    click.echo(f"demo password for every demo user: {DEMO_PASSWORD}")
    for username, role, org in summary.logins:
        click.echo(f"  {username:<16} {role} @ {org}")


@main.command("create-user")
@click.option("--username", required=True)
@click.option("--name", required=True)
@click.option("--org-code", required=True)
@click.option("--role", "roles", multiple=True, required=True, help="role code; repeat for several")
@click.option("--employee-no")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
def create_user_cmd(username: str, name: str, org_code: str, roles: tuple[str, ...], employee_no: str | None,
                    password: str) -> None:
    """Create a user (an audited, elevated admin action)."""
    from sqlalchemy import select

    from geo_core.catalog import PERMISSIONS
    from geo_core.db import SYSTEM, make_session_factory, transaction
    from geo_core.errors import DomainError
    from geo_core.orgs.models import Org
    from geo_core.scope import DataScope, Principal
    from geo_core.users.service import create_user

    settings = _settings()
    factory = make_session_factory(owner_engine(settings))
    try:
        with transaction(factory, SYSTEM) as session:
            org = session.scalar(select(Org).where(Org.code == org_code))
            if org is None:
                raise click.ClickException(f"no org with code {org_code}")
            actor = Principal(user_id=0, username="cli", name="cli", org_id=org.id, org_path=str(org.path),
                              scope=DataScope.all, permissions=frozenset(PERMISSIONS))
            user = create_user(session, actor, {"username": username, "name": name, "org_id": org.id,
                                                "roles": list(roles), "employee_no": employee_no,
                                                "password": password}, iterations=settings.pbkdf2_iterations)
            click.echo(f"created user {user.username} (id {user.id})")
    except DomainError as exc:
        raise click.ClickException(f"{exc.message} {exc.errors or ''}") from exc


@main.group()
def feed() -> None:
    """The big-data platform's daily feed (docs/DATA_FEED.md)."""


@feed.command("import")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.option("--day", help="business day YYYY-MM-DD (default: from the directory name)")
@click.option("--force", is_flag=True, help="compare row by row even if the same files were imported already")
def feed_import_cmd(directory: str, day: str | None, force: bool) -> None:
    """Import one business day's directory (one transaction; re-running the same day changes nothing)."""
    from jobs.feed import run_feed_import

    try:
        result = run_feed_import(str(Path(directory).resolve()), day, force)
    except Exception as exc:
        for error in getattr(exc, "errors", None) or []:
            click.echo(f"  {error.get('file', '')}:{error.get('line', '')} {error.get('field') or ''} "
                       f"{error.get('message', '')}", err=True)
        raise click.ClickException(getattr(exc, "message", str(exc))) from exc
    click.echo(f"feed run {result['run_id']}: {result['status']} {result['counts']}")


@main.command("worker")
@click.option("--burst", is_flag=True, help="exit when the queues are empty")
def worker_cmd(burst: bool) -> None:
    """Run an RQ worker on the GridMarket queues."""
    from jobs.worker import run_worker

    sys.exit(0 if run_worker(_settings(), burst=burst) else 1)


@main.command("routes")
def routes_cmd() -> None:
    """List the HTTP routes."""
    from api import create_app

    app = create_app(_settings())
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        methods = ",".join(sorted(m for m in rule.methods or () if m not in ("HEAD", "OPTIONS")))
        click.echo(f"{methods:<20} {rule.rule:<50} {rule.endpoint}")


if __name__ == "__main__":
    main()
