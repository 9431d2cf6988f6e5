from rest_framework import serializers

from ..models import Benchmark, EvalQueryResult, EvalRun, ReferenceResult, RerankerModel


class BenchmarkSerializer(serializers.ModelSerializer):
    class Meta:
        model = Benchmark
        fields = ["id", "name", "format", "group", "task", "primary_metric", "description", "source",
                  "n_queries", "n_documents", "n_qrels", "created_at"]


class BenchmarkImportSerializer(serializers.Serializer):
    format = serializers.ChoiceField(choices=["beir", "trec", "followir"])
    name = serializers.CharField(max_length=120)
    queries = serializers.FileField()
    qrels = serializers.FileField()
    changed_qrels = serializers.FileField(required=False)
    corpus = serializers.FileField(required=False)
    run = serializers.FileField(required=False)


class BenchmarkRunUploadSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="a TREC run (qid Q0 docid rank score tag) or score.json ({qid: {docid: score}})")
    name = serializers.RegexField(r"^[A-Za-z0-9_.-]{1,64}$", required=False,
                                  help_text="the run's name (default: the file's stem, or its folder for score.json)")


class RerankerModelSerializer(serializers.ModelSerializer):
    class Meta:
        model = RerankerModel
        fields = ["id", "name", "kind", "path", "base_model", "artifact", "config", "created_at"]


class EvalRunSerializer(serializers.ModelSerializer):
    benchmark_name = serializers.CharField(source="benchmark.name", read_only=True)
    model_name = serializers.CharField(source="model.name", read_only=True)
    progress_percent = serializers.IntegerField(read_only=True)

    class Meta:
        model = EvalRun
        fields = ["id", "benchmark", "benchmark_name", "model", "model_name", "first_stage", "top_k", "params", "status",
                  "progress_done", "progress_total", "progress_percent", "attempts", "error", "metrics", "created_at",
                  "started_at", "finished_at"]
        read_only_fields = fields


class EvalRunCreateSerializer(serializers.Serializer):
    benchmark = serializers.PrimaryKeyRelatedField(queryset=Benchmark.objects.all())
    model = serializers.PrimaryKeyRelatedField(queryset=RerankerModel.objects.all())
    first_stage = serializers.CharField(default="bm25", max_length=64)
    top_k = serializers.IntegerField(default=100, min_value=1, max_value=1000)
    smoke = serializers.BooleanField(default=False, help_text="a smoke run: kept off the leaderboard unless asked for")


class EvalQueryResultSerializer(serializers.ModelSerializer):
    class Meta:
        model = EvalQueryResult
        fields = ["id", "qid", "metrics"]


class ReferenceResultSerializer(serializers.ModelSerializer):
    class Meta:
        model = ReferenceResult
        fields = ["id", "system", "benchmark", "metric", "value", "first_stage", "citation", "url", "notes"]
