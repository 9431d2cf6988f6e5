"""`Authorization: Bearer lrs_...` (or `Token lrs_...`) authenticates as the token's user."""
from __future__ import annotations

from datetime import timedelta
from functools import cache

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection
from django.utils import timezone
from rest_framework import authentication, exceptions

from limrank_app.models import ApiToken
from limrank_app.roles import ADMIN, REVIEWER, user_roles_remember
from limrank_app.services import api_token_touch, token_hash


# Only what authentication and permissions read: the rest of the user (password hash, names, dates) is deferred
# and loaded if some code asks for it. Every column read here is parsed on every token request.
_TOKEN_FIELDS = ("id", "user_id", "scope")  # in the model's field order, as Model.from_db wants them
_USER_FIELDS = ("id", "is_superuser", "username", "is_staff", "is_active")
TOUCH_EVERY_S = 60


def _sql_parts():
    """Column and table names for the statements below: token t joined to its user u, and role membership of u."""
    q = connection.ops.quote_name
    User = get_user_model()
    pk = q(User._meta.pk.column)
    through = User.groups.through._meta
    # Membership of u in any of `groups` groups named by parameters. OFFSET 0 (PostgreSQL): probe this user's
    # memberships, an index lookup, instead of letting the planner hash every member of the group on each request
    # (a cost that grows with the number of reviewers). SQLite has no OFFSET without LIMIT, nor that plan.
    fence = " OFFSET 0" if connection.vendor == "postgresql" else ""
    member = lambda groups: (  # noqa: E731
        f"EXISTS (SELECT 1 FROM {q(through.db_table)} ug JOIN {q(Group._meta.db_table)} g ON g.id = ug.group_id "
        f"WHERE ug.user_id = u.{pk} AND g.name IN ({', '.join(['%s'] * groups)}){fence})")
    token_col = lambda n: "t." + q(ApiToken._meta.get_field(n).column)  # noqa: E731
    user_col = lambda n: "u." + q(User._meta.get_field(n).column)  # noqa: E731
    tables = f"{q(ApiToken._meta.db_table)} t JOIN {q(User._meta.db_table)} u ON u.{pk} = t.user_id"
    stale = f"({token_col('last_used_at')} IS NULL OR {token_col('last_used_at')} < %s)"
    return token_col, user_col, member, tables, stale


@cache
def _lookup_sql() -> str:
    """Token, user, staleness of last_used_at and role membership in one statement (prepared after a few uses)."""
    token_col, user_col, member, tables, stale = _sql_parts()
    return (
        f"SELECT {', '.join(token_col(n) for n in _TOKEN_FIELDS)}, {', '.join(user_col(n) for n in _USER_FIELDS)}, "
        f"{token_col('revoked_at')} IS NULL, {stale}, {member(1)}, {member(1)} FROM {tables} WHERE t.key_hash = %s"
    )


def api_token_lookup(key_hash: str, *, now=None):
    """(token, live, stale): the token with the hash, its user loaded with the roles remembered on it; `live` is false
    for a revoked token, `stale` true when last_used_at is older than TOUCH_EVERY_S. None if there is no such token."""
    now = now or timezone.now()
    with connection.cursor() as cur:
        touched_before = connection.ops.adapt_datetimefield_value(now - timedelta(seconds=TOUCH_EVERY_S))
        cur.execute(_lookup_sql(), [touched_before, REVIEWER, ADMIN, key_hash])
        row = cur.fetchone()
    if row is None:
        return None
    n, m = len(_TOKEN_FIELDS), len(_TOKEN_FIELDS) + len(_USER_FIELDS)
    token = ApiToken.from_db(connection.alias, _TOKEN_FIELDS, row[:n])
    user_id, superuser, username, staff, active = row[n:m]  # SQLite answers booleans as 0/1
    user = get_user_model().from_db(connection.alias, _USER_FIELDS, (user_id, bool(superuser), username, bool(staff), bool(active)))
    live, stale, reviewer, admin = (bool(v) for v in row[m:])
    user_roles_remember(user, reviewer=reviewer, admin=admin)
    token.user = user
    return token, live, stale


class ApiTokenAuthentication(authentication.BaseAuthentication):
    keywords = ("bearer", "token")

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower().decode() not in self.keywords:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Authorization header must be 'Bearer <token>'.")
        now = timezone.now()
        found = api_token_lookup(token_hash(header[1].decode("utf-8", "replace")), now=now)
        if found is None or not found[1] or not found[0].user.is_active:
            raise exceptions.AuthenticationFailed("Invalid or revoked API token.")
        token, _, stale = found
        if stale:  # last_used_at at most once a minute: no write on every request
            api_token_touch(token_id=token.pk, now=now)
        return token.user, token

    def authenticate_header(self, request):
        return "Bearer"


try:
    from drf_spectacular.extensions import OpenApiAuthenticationExtension

    class ApiTokenScheme(OpenApiAuthenticationExtension):
        """Documents the token in the schema, so Swagger UI's Authorize button takes it."""

        target_class = "limrank_app.api.authentication.ApiTokenAuthentication"
        name = "ApiToken"

        def get_security_definition(self, auto_schema):
            return {
                "type": "http",
                "scheme": "bearer",
                "description": "A personal API token (create one at /account/tokens/): `Authorization: Bearer lrs_...`. "
                "Read-only tokens may only use GET/HEAD/OPTIONS.",
            }
except ImportError:  # drf-spectacular is a runtime dependency; the guard only keeps this module importable alone
    pass
