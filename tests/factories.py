"""factory_boy factories for every model the tests build."""
import factory
from django.contrib.auth import get_user_model

from curation import models as cm
from curation.hashing import example_content_hash, text_hash
from evaluation import models as em
from limrank_app.roles import ADMIN, REVIEWER, user_role_set
from training import models as tm


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.PostGenerationMethodCall("set_password", "pw-12345678")

    @factory.post_generation
    def role(self, create, extracted, **kwargs):
        self.save()
        if extracted:
            user_role_set(self, extracted)


def reviewer(**kw):
    return UserFactory(role=REVIEWER, **kw)


def admin(**kw):
    return UserFactory(role=ADMIN, **kw)


class PersonaFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = cm.Persona

    text = factory.Sequence(lambda n: f"A community nurse in a rural clinic, number {n}")
    domain = "healthcare"
    source = "test"
    text_hash = factory.LazyAttribute(lambda o: text_hash(o.text))


class SeedQueryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = cm.SeedQuery

    external_id = factory.Sequence(str)
    text = factory.Sequence(lambda n: f"how long does it take to boil an egg {n}")
    source = "test"
    text_hash = factory.LazyAttribute(lambda o: text_hash(o.text))


class DatasetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = cm.Dataset

    name = factory.Sequence(lambda n: f"dataset-{n}")
    reviews_required = 1


class GeneratedQueryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = cm.GeneratedQuery

    seed = factory.SubFactory(SeedQueryFactory)
    persona = factory.SubFactory(PersonaFactory)
    variant = cm.GeneratedQuery.Variant.DAILY_LIFE
    domain = "healthcare"
    text = factory.Sequence(lambda n: f"My grandmother asks how long to boil eggs for her diet, case {n}")
    text_hash = factory.LazyAttribute(lambda o: text_hash(o.text))


class PassageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = cm.Passage

    text = factory.Sequence(lambda n: f"Hard-boiled eggs need 9 to 12 minutes in boiling water. Passage {n}.")
    kind = cm.Passage.Kind.POSITIVE
    source = "synthetic"
    text_hash = factory.LazyAttribute(lambda o: text_hash(o.text))


class ExampleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = cm.Example

    dataset = factory.SubFactory(DatasetFactory)
    query = factory.SubFactory(GeneratedQueryFactory)
    passage = factory.SubFactory(PassageFactory)
    intended_label = True
    reasoning_trace = "The query asks for boiling time; the passage gives it. So it is relevant."
    reasoner_judgment = True
    origin = cm.Example.Origin.SYNTHETIC
    status = cm.Example.Status.PENDING_REVIEW
    content_hash = factory.LazyAttribute(
        lambda o: example_content_hash(query=o.query.text, passage=o.passage.text, label=o.intended_label)
    )


class GenerationRunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = cm.GenerationRun

    name = factory.Sequence(lambda n: f"run-{n}")
    params = factory.LazyFunction(lambda: {"n_seeds": 0, "n_personas": 0})


class DatasetVersionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = cm.DatasetVersion

    dataset = factory.SubFactory(DatasetFactory)
    version = factory.Sequence(lambda n: n + 1)
    status = cm.DatasetVersion.Status.READY


class TrainingJobFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = tm.TrainingJob

    dataset_version = factory.SubFactory(DatasetVersionFactory)


class BenchmarkFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = em.Benchmark

    name = factory.Sequence(lambda n: f"bench-{n}")
    format = em.Benchmark.Format.BEIR


class RerankerModelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = em.RerankerModel

    name = factory.Sequence(lambda n: f"model-{n}")
    kind = em.RerankerModel.Kind.BM25


# ---- review workbench (curation/services/review.py)
class ReviewFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = cm.Review

    example = factory.SubFactory(ExampleFactory)
    reviewer = factory.SubFactory(UserFactory, role=REVIEWER)
    decision = cm.Review.Decision.APPROVE


def review_dataset(*, n: int = 3, reviews_required: int = 1, **kw):
    """A dataset with n examples waiting for review."""
    ds = DatasetFactory(reviews_required=reviews_required, **kw)
    return ds, ExampleFactory.create_batch(n, dataset=ds)
