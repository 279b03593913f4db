"""``POST /oauth/oauth2/revoke`` (RFC 7009).

The client authenticates as at the token endpoint. Revoking a refresh token ends its grant, so
every access token issued under that grant stops working at once; revoking an access token
ends only that token. Unknown tokens are answered 200, as RFC 7009 §2.2 requires, so the
endpoint reveals nothing. A token that belongs to another client is refused.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from vitalbridge.sandbox.errors import InvalidRequest
from vitalbridge.sandbox.oauth.client_auth import authenticate_client
from vitalbridge.sandbox.oauth.token import read_form
from vitalbridge.sandbox.responses import oauth_json
from vitalbridge.sandbox.state import REVOKE_PATH, sandbox_state, token_url

router = APIRouter()


@router.post(REVOKE_PATH)
async def revoke(request: Request) -> Response:
    state = sandbox_state(request)
    form = await read_form(request)
    client = await authenticate_client(request, form, state, token_url(request))
    raw = form.get("token")
    if not raw:
        raise InvalidRequest("token is missing")
    grant = state.tokens.grant_by_refresh(raw)
    if grant is not None:
        if grant.client_id != client.client_id:
            raise InvalidRequest("this token was not issued to the authenticated client")
        state.tokens.revoke_grant(grant.id)
    elif not state.tokens.revoke_access(raw, client.client_id):
        raise InvalidRequest("this token was not issued to the authenticated client")
    return oauth_json({})
