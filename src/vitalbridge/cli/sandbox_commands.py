"""``vitalbridge sandbox``: run the eCW-like sandbox EHR."""

from __future__ import annotations

from typing import Annotated

import typer


def sandbox(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="VB_SANDBOX_PORT", help="TCP port.")] = 9090,
    practices: Annotated[str, typer.Option(help="Comma-separated practice codes.")] = "JAFJCD",
    patients: Annotated[int, typer.Option(help="Synthetic patients per practice.")] = 1000,
    seed: Annotated[int, typer.Option(help="Seed for synthetic data (same seed, same patients).")] = 7,
    token_lifetime: Annotated[
        int, typer.Option(help="Access token lifetime, seconds (backend tokens too with --profile generic).")
    ] = 3600,
    rate_limit: Annotated[int, typer.Option(help="Requests per minute per practice, token calls included.")] = 250,
    profile: Annotated[
        str,
        typer.Option(
            help="ecw: behave like eClinicalWorks; generic: a strict textbook SMART server (docs/sandbox.md)."
        ),
    ] = "ecw",
) -> None:
    """Serve an eCW-like FHIR R4 EHR for demos and tests (see docs/sandbox.md)."""
    import uvicorn

    from vitalbridge.sandbox.app import create_sandbox_app
    from vitalbridge.sandbox.config import SandboxConfig
    from vitalbridge.sandbox.profile import Profile

    if profile not in {p.value for p in Profile}:
        raise typer.BadParameter("use ecw or generic", param_hint="--profile")
    codes = tuple(c.strip() for c in practices.split(",") if c.strip())
    if not codes:
        raise typer.BadParameter("name at least one practice code", param_hint="--practices")
    config = SandboxConfig(
        practices=codes,
        patients_per_practice=patients,
        seed=seed,
        token_lifetime_s=token_lifetime,
        rate_limit_per_minute=rate_limit,
        profile=Profile(profile),
    )
    from vitalbridge.quickstart import require_free_port

    require_free_port("VB_SANDBOX_PORT", host, port, "vitalbridge sandbox")
    typer.echo(f"sandbox EHR on http://{host}:{port}  practices: {', '.join(codes)}  profile: {profile}")
    uvicorn.run(create_sandbox_app(config), host=host, port=port, log_level="warning")


def register(app: typer.Typer) -> None:
    app.command("sandbox")(sandbox)
