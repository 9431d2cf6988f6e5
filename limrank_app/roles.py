"""Two roles: reviewers verify examples; admins also launch jobs and manage data.
Roles are Django groups; superusers count as admins."""
from __future__ import annotations

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import Group, Permission
from django.core.exceptions import PermissionDenied

REVIEWER = "reviewer"
ADMIN = "admin"


def user_roles_remember(user, *, reviewer: bool, admin: bool) -> None:
    """Group membership read together with the user (token authentication does), kept for this request's user object."""
    user._limrank_roles = frozenset(r for r, member in ((REVIEWER, reviewer), (ADMIN, admin)) if member)


def user_is_admin(user) -> bool:
    if not user.is_authenticated:
        return False
    roles = getattr(user, "_limrank_roles", None)
    if roles is not None:
        return user.is_superuser or ADMIN in roles
    return user.is_superuser or user.groups.filter(name=ADMIN).exists()


def user_is_reviewer(user) -> bool:
    if not user.is_authenticated:
        return False
    roles = getattr(user, "_limrank_roles", None)
    if roles is not None:
        return user.is_superuser or bool(roles)
    # One query: admins are reviewers too.
    return user.is_superuser or user.groups.filter(name__in=[REVIEWER, ADMIN]).exists()


def reviewer_required(view):
    @login_required
    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if not user_is_reviewer(request.user):
            raise PermissionDenied("reviewers only")
        return view(request, *args, **kwargs)

    return wrapped


def admin_required(view):
    @login_required
    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if not user_is_admin(request.user):
            raise PermissionDenied("admins only")
        return view(request, *args, **kwargs)

    return wrapped


def roles_context(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"is_admin": False, "is_reviewer": False}
    return {"is_admin": user_is_admin(user), "is_reviewer": user_is_reviewer(user)}


# Reviewers read the pipeline's data and write reviews and edits; admins get every permission of the studio's apps.
REVIEWER_PERMISSIONS = [
    ("curation", "view_example"), ("curation", "change_example"), ("curation", "view_review"),
    ("curation", "add_review"), ("curation", "change_review"), ("curation", "view_generatedquery"),
    ("curation", "view_passage"), ("curation", "view_persona"), ("curation", "view_dataset"),
    ("curation", "add_examplerevision"), ("curation", "view_examplerevision"), ("curation", "add_reviewclaim"),
    ("curation", "view_reviewclaim"), ("curation", "delete_reviewclaim"),
]
# "auth": admins manage users, groups (the roles) in the Django admin; "axes": they see and clear login lockouts.
ADMIN_APPS = ["curation", "training", "evaluation", "limrank_app", "auth", "axes"]


def roles_ensure(sender=None, **kwargs):
    reviewer, _ = Group.objects.get_or_create(name=REVIEWER)
    admin, _ = Group.objects.get_or_create(name=ADMIN)
    for app_label, codename in REVIEWER_PERMISSIONS:
        perm = Permission.objects.filter(content_type__app_label=app_label, codename=codename).first()
        if perm:
            reviewer.permissions.add(perm)
    admin.permissions.add(*Permission.objects.filter(content_type__app_label__in=ADMIN_APPS))


def user_role_set(user, role: str) -> None:
    """Put a user in exactly one of the two roles; admins can use the Django admin."""
    user.groups.remove(*Group.objects.filter(name__in=[REVIEWER, ADMIN]))
    user.groups.add(Group.objects.get(name=role))
    user.is_staff = role == ADMIN
    user.save(update_fields=["is_staff"])
