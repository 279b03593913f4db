"""Bearer tokens on the FHIR API (RFC 6750 §3; SMART App Launch 2.0 scopes; SPEC §2 isolation).

401 when the token is missing, unknown, expired or revoked; 403 when it is valid but was not
issued for this practice (its client is not activated here) or lacks the scope for the
interaction. Both answer with an OperationOutcome that says what to fix.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from vitalbridge.sandbox.errors import FhirError, forbidden
from vitalbridge.sandbox.oauth.scopes import Context, Interaction, ResourceScope, granting_scope, needed_scope
from vitalbridge.sandbox.oauth.tokens import AccessToken
from vitalbridge.sandbox.state import SandboxState

REALM = 'Bearer realm="vitalbridge-sandbox"'


@dataclass(frozen=True)
class Access:
    token: AccessToken
    scope: ResourceScope

    @property
    def patient_only(self) -> str | None:
        """The one patient a patient/ scope confines the caller to, else None."""
        return self.token.patient if self.scope.context is Context.patient else None


def bearer(request: Request, state: SandboxState, practice: str) -> AccessToken:
    scheme, _, raw = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not raw.strip():
        raise FhirError(
            401,
            "login",
            "a bearer access token is required (Authorization: Bearer …)",
            headers={"WWW-Authenticate": REALM},
        )
    token = state.tokens.active_access(raw.strip())
    if token is None:
        state.stats.count("invalid_token_refusals")
        raise FhirError(
            401,
            "login",
            "the access token is unknown, expired or revoked; get a new one from the token endpoint",
            headers={"WWW-Authenticate": f'{REALM}, error="invalid_token"'},
        )
    if practice not in token.practices:
        raise forbidden(
            f"this token is not valid at practice {practice}: its client is not activated here "
            "(tokens work only at the practices that activated the client)"
        )
    return token


def require(request: Request, state: SandboxState, practice: str, resource: str, interaction: Interaction) -> Access:
    token = bearer(request, state, practice)
    scope = granting_scope(token.scopes, resource, interaction)
    if scope is None:
        context = Context.user if token.grant_id is not None else Context.system
        needed = needed_scope(context, resource, interaction)
        raise forbidden(
            f"insufficient scope: {interaction.name} on {resource} needs {needed}; "
            f"the token has: {' '.join(token.scopes) or 'no scopes'}",
            headers={"WWW-Authenticate": f'{REALM}, error="insufficient_scope", scope="{needed.split()[0]}"'},
        )
    if scope.context is Context.patient and token.patient is None:
        raise forbidden("a patient/ scope needs a launch patient; request launch/patient at authorization")
    return Access(token, scope)
