from django import forms

from .benchmarks import BRIGHT_TASKS
from .models import Benchmark, RerankerModel


class BenchmarkImportForm(forms.Form):
    format = forms.ChoiceField(choices=[("beir", "BEIR"), ("trec", "TREC"), ("bright", "BRIGHT (one task)"),
                                        ("followir", "FollowIR (paired qrels)")])
    name = forms.CharField(max_length=120, help_text="BRIGHT: the group name, e.g. BRIGHT (the task is appended)")
    queries = forms.FileField(label="Queries / topics", help_text="BEIR queries.jsonl, TREC topics, BRIGHT topics tsv(.gz), FollowIR queries.jsonl")
    qrels = forms.FileField(label="Qrels", help_text="BEIR tsv (header), TREC qrels or jsonl (query-id, corpus-id, score); "
                                                     "FollowIR: the original-instruction qrels (qrels_og/test.jsonl)")
    changed_qrels = forms.FileField(label="Changed qrels (FollowIR)", required=False, help_text="qrels_changed/test.jsonl")
    corpus = forms.FileField(label="Corpus", required=False,
                             help_text="jsonl(.gz), tsv, or TREC SGML <DOC> documents (gzipped or not); required for BEIR")
    run = forms.FileField(label="First-stage run", required=False,
                          help_text="a TREC run or a score.json ({qid: {docid: score}}); FollowIR: also top_ranked.jsonl")
    excluded = forms.FileField(label="Excluded ids (BRIGHT: qid docid)", required=False)
    task = forms.ChoiceField(label="BRIGHT task", choices=[("", "—")] + [(t, t) for t in BRIGHT_TASKS], required=False)

    def clean(self):
        data = super().clean()
        if data.get("format") == "beir" and not data.get("corpus"):
            self.add_error("corpus", "BEIR needs a corpus")
        if data.get("format") == "bright" and not data.get("task"):
            self.add_error("task", "choose the BRIGHT task")
        if data.get("format") == "followir" and not data.get("changed_qrels"):
            self.add_error("changed_qrels", "FollowIR needs the changed-instruction qrels")
        return data


class EvalRunForm(forms.Form):
    benchmark = forms.ModelChoiceField(queryset=Benchmark.objects.order_by("group", "name"))
    model = forms.ModelChoiceField(queryset=RerankerModel.objects.order_by("name"))
    first_stage = forms.CharField(initial="bm25", help_text="bm25, or the name of a run uploaded with the benchmark")
    top_k = forms.IntegerField(initial=100, min_value=1, max_value=1000, label="Depth (top k)")
