"""Permissions for every endpoint: role (reviewer/admin) and, for token requests, the token's scope."""
from __future__ import annotations

from rest_framework import permissions

from limrank_app.models import ApiToken
from limrank_app.roles import user_is_admin, user_is_reviewer


def _token_allows(request) -> bool:
    token = request.auth
    if isinstance(token, ApiToken) and token.scope == ApiToken.Scope.READ:
        return request.method in permissions.SAFE_METHODS
    return True


class IsReviewer(permissions.BasePermission):
    """Reviewers and admins; a read-only token may only read."""

    message = "Reviewer or admin role required (and a read-write token for writes)."

    def has_permission(self, request, view):
        return bool(request.user and user_is_reviewer(request.user) and _token_allows(request))


class IsAdmin(permissions.BasePermission):
    message = "Admin role required (and a read-write token for writes)."

    def has_permission(self, request, view):
        return bool(request.user and user_is_admin(request.user) and _token_allows(request))


class ReviewerReadAdminWrite(permissions.BasePermission):
    """Reviewers read; only admins write."""

    message = "Reviewers may read; writes need the admin role (and a read-write token)."

    def has_permission(self, request, view):
        if not (request.user and user_is_reviewer(request.user) and _token_allows(request)):
            return False
        return request.method in permissions.SAFE_METHODS or user_is_admin(request.user)


class OwnerOrAdmin(permissions.BasePermission):
    """Object level: a reviewer acts on their own objects (`reviewer` or `user` attribute), an admin on all.
    Combine with IsReviewer for the role and token-scope check."""

    message = "This belongs to another user."

    def has_object_permission(self, request, view, obj):
        if user_is_admin(request.user):
            return True
        owner_id = getattr(obj, "reviewer_id", None) or getattr(obj, "user_id", None)
        return owner_id is not None and owner_id == request.user.pk
