"""A user's own API tokens: create (the key is shown once) and revoke."""
from __future__ import annotations

from django import forms
from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from .models import ApiToken
from .roles import reviewer_required
from .services import api_token_create, api_token_revoke


class TokenCreateForm(forms.Form):
    name = forms.CharField(max_length=100, label="Token name", help_text="what it is for, e.g. 'training box'")
    scope = forms.ChoiceField(choices=ApiToken.Scope.choices, initial=ApiToken.Scope.READ, label="Scope", widget=forms.RadioSelect)


def _page(request, form, new_key=None, status=200):
    tokens = ApiToken.objects.filter(user=request.user).order_by("revoked_at", "-created_at")
    return render(request, "account/tokens.html", {"form": form, "tokens": tokens, "new_key": new_key}, status=status)


@reviewer_required
def token_list(request):
    if request.method == "POST":
        form = TokenCreateForm(request.POST)
        if not form.is_valid():
            return _page(request, form, status=400)
        token, key = api_token_create(user=request.user, name=form.cleaned_data["name"], scope=form.cleaned_data["scope"])
        # Rendered, not redirected: the plain key exists only in this response.
        response = _page(request, TokenCreateForm(), new_key={"token": token, "key": key})
        response["Cache-Control"] = "no-store"
        return response
    return _page(request, TokenCreateForm())


@reviewer_required
@require_POST
def token_revoke(request, pk: int):
    # Only the owner's tokens are found: another user's id is a 404, not a revoke.
    token = get_object_or_404(ApiToken, pk=pk, user=request.user)
    api_token_revoke(token=token)
    messages.success(request, f"Token “{token.name}” revoked.")
    return redirect("token_list")
