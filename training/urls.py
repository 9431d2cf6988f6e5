from django.urls import path

from . import views

app_name = "training"
urlpatterns = [
    path("", views.job_list, name="job_list"),
    path("new/", views.job_launch, name="job_launch"),
    path("jobs/<int:pk>/", views.job_detail, name="job_detail"),
    path("jobs/<int:pk>/live/", views.job_progress_partial, name="job_live"),
    path("jobs/<int:pk>/cancel/", views.job_cancel, name="job_cancel"),
    path("jobs/<int:pk>/resume/", views.job_resume, name="job_resume"),
]
