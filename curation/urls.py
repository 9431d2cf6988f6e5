from django.urls import path

from . import views

app_name = "curation"
urlpatterns = [
    path("examples/", views.example_list, name="example_list"),
    path("examples/<int:pk>/", views.example_detail, name="example_detail"),
]
