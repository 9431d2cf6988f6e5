"""The start page, at the site root and outside the curation namespace (templates link to it as 'home')."""
from django.urls import path

from .views.home import home

urlpatterns = [path("", home, name="home")]
