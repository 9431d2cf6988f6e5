from django.urls import path

from .views import examples

app_name = "curation"
urlpatterns = [
    path("examples/", examples.example_list, name="example_list"),
    path("examples/<int:pk>/", examples.example_detail, name="example_detail"),
]
