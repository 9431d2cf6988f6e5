from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from curation.selectors import home_summary
from limrank_app.roles import user_is_admin


@login_required
def home(request):
    return render(request, "home.html", {"summary": home_summary(user=request.user, admin=user_is_admin(request.user))})
