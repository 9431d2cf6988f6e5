from django.urls import path

from . import views

app_name = "evaluation"
urlpatterns = [
    path("leaderboard/", views.leaderboard, name="leaderboard"),
    path("leaderboard/cost/", views.leaderboard_cost, name="leaderboard_cost"),
    path("benchmarks/", views.benchmark_list, name="benchmark_list"),
    path("benchmarks/import/", views.benchmark_import, name="benchmark_import"),
    path("runs/", views.eval_run_list, name="run_list"),
    path("runs/new/", views.eval_run_new, name="run_new"),
    path("runs/<int:pk>/", views.eval_run_detail, name="run_detail"),
    path("runs/<int:pk>/run.trec", views.eval_run_download, name="run_download"),
    path("runs/<int:pk>/cancel/", views.eval_run_cancel, name="run_cancel"),
    path("runs/<int:pk>/resume/", views.eval_run_resume, name="run_resume"),
]
