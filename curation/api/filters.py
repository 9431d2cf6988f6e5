"""django-filter FilterSets for the list endpoints."""
from __future__ import annotations

import django_filters
from django.db.models import Exists, OuterRef, Q
from django.db.models.fields.json import KeyTransform

from curation.models import Dataset, DatasetVersion, Example, GeneratedQuery, GenerationRun, Persona, Review, SeedQuery
from limrank_app.jobs import JobStatus
from limrank_app.roles import user_is_admin


def example_reviews_visible_to_all(*, user) -> bool:
    """Admins see every reviewer's decisions; a reviewer sees others' only on datasets reviewed once (not blind)."""
    return user is not None and user_is_admin(user)


class ExampleFilter(django_filters.FilterSet):
    # distinct=False: each filters a column of the example or of its query (a forward foreign key), so no join can
    # repeat an example; django-filter's default DISTINCT sorted every matching row to return one page (issue 21).
    status = django_filters.MultipleChoiceFilter(choices=Example.Status.choices, distinct=False)
    origin = django_filters.MultipleChoiceFilter(choices=Example.Origin.choices, distinct=False)
    variant = django_filters.MultipleChoiceFilter(field_name="query__variant", choices=GeneratedQuery.Variant.choices,
                                                  distinct=False)
    domain = django_filters.CharFilter(field_name="query__domain")
    dataset = django_filters.ModelChoiceFilter(queryset=Dataset.objects.all())
    generation_run = django_filters.NumberFilter(field_name="generation_run_id")
    intended_label = django_filters.BooleanFilter()
    reasoner_judgment = django_filters.BooleanFilter()
    prompt_version = django_filters.CharFilter(
        method="filter_prompt_version",
        label="prompt name and version, e.g. reasoner:2 (the example was made with version 2 of the reasoner prompt)",
    )
    decision = django_filters.ChoiceFilter(
        choices=Review.Decision.choices, method="filter_decision",
        label=(
            "examples with at least one live (not undone) review with this decision; for a reviewer, on datasets that "
            "need more than one review (blind review), only the reviewer's own reviews count"
        ),
    )

    class Meta:
        model = Example
        fields = []

    def filter_prompt_version(self, queryset, name, value):
        prompt, sep, version = value.partition(":")
        prompt = prompt.strip()
        if not sep or not prompt or not version.strip().isdigit():
            # A malformed value matches nothing rather than everything.
            return queryset.none()
        # KeyTransform, not a `prompt_versions__<name>` kwarg: a user-given name must never become a lookup.
        return queryset.alias(_pv=KeyTransform(prompt, "prompt_versions")).filter(_pv=int(version))

    def filter_decision(self, queryset, name, value):
        live = Review.objects.filter(example=OuterRef("pk"), decision=value, undone=False)
        user = getattr(self.request, "user", None)
        if not example_reviews_visible_to_all(user=user):
            # Blind review: another reviewer's decision must not be learnt before one's own review.
            live = live.filter(Q(example__dataset__reviews_required__lte=1) | Q(reviewer=user))
        return queryset.filter(Exists(live))


class PersonaFilter(django_filters.FilterSet):
    domain = django_filters.CharFilter()
    source = django_filters.CharFilter()

    class Meta:
        model = Persona
        fields = []


class SeedQueryFilter(django_filters.FilterSet):
    source = django_filters.CharFilter()
    external_id = django_filters.CharFilter()

    class Meta:
        model = SeedQuery
        fields = []


class ReviewFilter(django_filters.FilterSet):
    example = django_filters.NumberFilter(field_name="example_id")
    decision = django_filters.ChoiceFilter(choices=Review.Decision.choices)
    reviewer = django_filters.CharFilter(field_name="reviewer__username")
    undone = django_filters.BooleanFilter()
    is_adjudication = django_filters.BooleanFilter()

    class Meta:
        model = Review
        fields = []


class GenerationRunFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=JobStatus.choices)
    dataset = django_filters.NumberFilter(field_name="dataset_id")

    class Meta:
        model = GenerationRun
        fields = []


class DatasetVersionFilter(django_filters.FilterSet):
    dataset = django_filters.NumberFilter(field_name="dataset_id")
    content_hash = django_filters.CharFilter()

    class Meta:
        model = DatasetVersion
        fields = []
