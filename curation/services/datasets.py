"""Datasets and their frozen versions: a filter, a mixing recipe sampled with a seed, a content hash."""
from __future__ import annotations

import hashlib
import logging
import random
from collections.abc import Callable

from celery import current_app
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Max, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.db.models.fields.json import KeyTransform

from curation import exports
from curation.hashing import text_hash
from curation.models import (
    Dataset, DatasetVersion, DatasetVersionBuild, DatasetVersionMember, Example, GeneratedQuery,
)
from curation.selectors.datasets import dataset_version_datasheet_compute
from curation.services.diagnostics import build_options_normalize, examples_build_exclusions
from limrank_app.jobs import JobStatus, job_enqueue_on_commit, job_finish, job_progress_detached, job_resume

# What a version's `filters` may say (documented in the API schema and the README).
FILTER_KEYS = ("status", "origin", "variant", "domain", "label", "prompt_versions", "reasoner_model", "datasets", "generation_run")
RECIPE_KEYS = ("seed", "mix", "shuffle", "dedupe", "exclude_contaminated")
DEFAULT_FILTERS = {"status": [Example.Status.APPROVED]}
BUILD_CHUNK = 50_000  # members read, hashed and written a statement at a time (PostgreSQL)
BUILD_CHUNK_SQLITE = 10_000  # SQLite: the chunk's ids are bound variables of one query
RENDER_TASK = "curation.tasks.dataset_version_render_task"
logger = logging.getLogger(__name__)

# ---------------------------------------------------------------- datasets


def dataset_create(
    *, name: str, created_by=None, description: str = "", guidelines: str = "", reviews_required: int = 1, claim_minutes: int = 15
) -> Dataset:
    dataset = Dataset(
        name=name, description=description, guidelines=guidelines, reviews_required=reviews_required,
        claim_minutes=claim_minutes, created_by=created_by,
    )
    dataset.full_clean()
    dataset.save()
    return dataset


def dataset_update(*, dataset: Dataset, **fields) -> Dataset:
    allowed = {"name", "description", "guidelines", "reviews_required", "claim_minutes"}
    unknown = set(fields) - allowed
    if unknown:
        raise ValidationError({k: "this field cannot be changed" for k in sorted(unknown)})
    for key, value in fields.items():
        setattr(dataset, key, value)
    dataset.full_clean()
    dataset.save(update_fields=sorted(fields) or None)
    return dataset


# ---------------------------------------------------------------- filters and recipes


def _as_list(value) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _choice_list(key: str, value, choices) -> list[str]:
    values = [str(v) for v in _as_list(value)]
    valid = {c for c, _ in choices}
    bad = [v for v in values if v not in valid]
    if bad:
        raise ValidationError({"filters": f"{key}: unknown value(s) {', '.join(map(repr, bad))}; allowed: {', '.join(sorted(valid))}"})
    return values


def dataset_version_filters_normalize(*, dataset: Dataset, filters: dict | None) -> dict:
    """Validate a version filter and fill in defaults (approved examples of this dataset)."""
    filters = dict(filters or {})
    if not isinstance(filters, dict):
        raise ValidationError({"filters": "must be an object"})
    unknown = sorted(set(filters) - set(FILTER_KEYS))
    if unknown:
        raise ValidationError({"filters": f"unknown key(s) {', '.join(unknown)}; allowed: {', '.join(FILTER_KEYS)}"})
    out: dict = {}
    status = filters.get("status", DEFAULT_FILTERS["status"])
    out["status"] = "any" if status == "any" else _choice_list("status", status, Example.Status.choices)
    if filters.get("origin") not in (None, [], ""):
        out["origin"] = _choice_list("origin", filters["origin"], Example.Origin.choices)
    if filters.get("variant") not in (None, [], ""):
        out["variant"] = _choice_list("variant", filters["variant"], GeneratedQuery.Variant.choices)
    for key in ("domain", "reasoner_model"):
        if filters.get(key) not in (None, [], ""):
            out[key] = [str(v) for v in _as_list(filters[key])]
    if filters.get("label") is not None:
        if not isinstance(filters["label"], bool):
            raise ValidationError({"filters": "label: must be true or false"})
        out["label"] = filters["label"]
    if filters.get("prompt_versions"):
        pv = filters["prompt_versions"]
        if not isinstance(pv, dict) or not all(isinstance(v, int) and not isinstance(v, bool) for v in pv.values()):
            raise ValidationError({"filters": 'prompt_versions: must map prompt names to integer versions, e.g. {"reasoner": 2}'})
        out["prompt_versions"] = {str(k): v for k, v in sorted(pv.items())}
    if filters.get("generation_run") not in (None, [], ""):
        try:
            out["generation_run"] = sorted(int(v) for v in _as_list(filters["generation_run"]))
        except (TypeError, ValueError):
            raise ValidationError({"filters": "generation_run: must be run ids"}) from None
    datasets = filters.get("datasets")
    if datasets in (None, [], ""):
        out["datasets"] = [dataset.pk]
    elif datasets == "all":
        out["datasets"] = "all"
    else:
        ids = []
        for ref in _as_list(datasets):
            found = Dataset.objects.filter(Q(name=str(ref)) | Q(pk=ref if str(ref).isdigit() else None)).first()
            if found is None:
                raise ValidationError({"filters": f"datasets: no dataset {ref!r}"})
            ids.append(found.pk)
        out["datasets"] = sorted(set(ids))
    return out


def dataset_version_recipe_normalize(recipe: dict | None) -> dict:
    recipe = dict(recipe or {})
    if not isinstance(recipe, dict):
        raise ValidationError({"recipe": "must be an object"})
    unknown = sorted(set(recipe) - set(RECIPE_KEYS))
    if unknown:
        raise ValidationError({"recipe": f"unknown key(s) {', '.join(unknown)}; allowed: {', '.join(RECIPE_KEYS)}"})
    seed = recipe.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ValidationError({"recipe": "seed: must be an integer"})
    mix = recipe.get("mix") or {}
    if not isinstance(mix, dict):
        raise ValidationError({"recipe": 'mix: must map an origin to a count, e.g. {"rank1": 14000, "synthetic": 6000}'})
    origins = {c for c, _ in Example.Origin.choices}
    for key, count in mix.items():
        if key not in origins:
            raise ValidationError({"recipe": f"mix: unknown origin {key!r}; allowed: {', '.join(sorted(origins))}"})
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise ValidationError({"recipe": f"mix: count for {key!r} must be a non-negative integer"})
    shuffle = recipe.get("shuffle", True)
    if not isinstance(shuffle, bool):
        raise ValidationError({"recipe": "shuffle: must be true or false"})
    return {"seed": seed, "mix": dict(sorted(mix.items())), "shuffle": shuffle, **build_options_normalize(recipe)}


def examples_matching(*, filters: dict) -> QuerySet[Example]:
    """Examples a normalized filter selects."""
    qs = Example.objects.all()
    if filters.get("datasets") != "all":
        qs = qs.filter(dataset_id__in=filters.get("datasets") or [])
    if filters.get("status") not in (None, "any"):
        qs = qs.filter(status__in=filters["status"])
    if filters.get("origin"):
        qs = qs.filter(origin__in=filters["origin"])
    if filters.get("variant"):
        qs = qs.filter(query__variant__in=filters["variant"])
    if filters.get("domain"):
        qs = qs.filter(query__domain__in=filters["domain"])
    if filters.get("reasoner_model"):
        qs = qs.filter(reasoner_model__in=filters["reasoner_model"])
    if filters.get("label") is not None:
        qs = qs.filter(intended_label=filters["label"])
    if filters.get("generation_run"):
        qs = qs.filter(generation_run_id__in=filters["generation_run"])
    for i, (name, version) in enumerate((filters.get("prompt_versions") or {}).items()):
        # KeyTransform: a prompt name must never be read as a lookup ("contains", "0", ...).
        qs = qs.alias(**{f"_pv{i}": KeyTransform(name, "prompt_versions")}).filter(**{f"_pv{i}": version})
    return qs


def _describe(filters: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in filters.items())


def dataset_version_select(*, filters: dict, recipe: dict) -> list[int]:
    """The example ids of a version, in order. Deterministic in (data, filters, recipe): candidates are
    ordered by content hash (not by id), so the same data imported elsewhere gives the same selection."""
    qs = examples_matching(filters=filters)
    drop = examples_build_exclusions(examples=qs, recipe=recipe)  # near-duplicates, contamination (when asked)
    if drop:
        qs = qs.exclude(pk__in=drop)
    seed = recipe["seed"]
    if recipe["mix"]:
        selected: list[int] = []
        shortfalls = []
        for origin, count in recipe["mix"].items():
            ids = list(qs.filter(origin=origin).order_by("content_hash").values_list("id", flat=True))
            if count > len(ids):
                shortfalls.append(f"{count} {origin} examples asked, {len(ids)} available")
                continue
            selected.extend(random.Random(f"limrank:{seed}:{origin}").sample(ids, count))
        if shortfalls:
            raise ValidationError(
                {"recipe": f"the recipe asks for more examples than match the filters ({_describe(filters)}): " + "; ".join(shortfalls)}
            )
    else:
        selected = list(qs.order_by("content_hash").values_list("id", flat=True))
    if recipe["shuffle"]:
        random.Random(f"limrank:{seed}:order").shuffle(selected)
    if not selected:
        raise ValidationError({"filters": f"no examples match the filters ({_describe(filters)})"})
    return selected


def member_content_hash(*, query_text, instruction, passage_title, passage_text, reasoning_trace, label, origin, variant, domain) -> str:
    """Hash of everything a member exports as training content (documented: clients can verify)."""
    return text_hash(query_text, instruction, passage_title, passage_text, reasoning_trace,
                     "true" if label else "false", origin, variant, domain)


def version_content_hash(member_hashes) -> str:
    """sha256 over the members' hashes in position order, one per line."""
    h = hashlib.sha256()
    for mh in member_hashes:
        h.update(mh.encode("ascii"))
        h.update(b"\n")
    return h.hexdigest()


_SNAPSHOT_FIELDS = (  # what member_content_hash reads
    "id", "query__text", "query__instruction", "passage__title", "passage__text", "reasoning_trace", "intended_label",
    "origin", "query__variant", "query__domain",
)


# ---------------------------------------------------------------- build


def dataset_version_build(
    *,
    dataset: Dataset,
    filters: dict | None,
    recipe: dict | None,
    created_by=None,
    name: str = "",
    progress: Callable[[int, int], None] | None = None,
    render_now: bool = False,
) -> DatasetVersion:
    """Freeze a selection of examples as the dataset's next version. All or nothing; raises ValidationError
    with a clear message when the filter or recipe is invalid or asks for more than there is.

    The version is `building` until its export files are rendered: by a Celery task enqueued when the members are
    committed, or here, before returning, with render_now (the management command, which needs no worker)."""
    filters = dataset_version_filters_normalize(dataset=dataset, filters=filters)
    recipe = dataset_version_recipe_normalize(recipe)
    ids = dataset_version_select(filters=filters, recipe=recipe)
    for attempt in range(3):
        try:
            with transaction.atomic():
                _snapshot_begin()
                version = _build(dataset=dataset, filters=filters, recipe=recipe, ids=ids, created_by=created_by,
                                 name=name, progress=progress)
                if not render_now:
                    transaction.on_commit(lambda: dataset_version_render_enqueue(version=version))
            break
        except IntegrityError:
            # Two builds raced for the same version number: take the next one.
            if attempt == 2:
                raise
    return dataset_version_render(version=version) if render_now else version


def _snapshot_begin() -> None:
    """Have the build's transaction read one snapshot of the data: a chunk's member hashes are computed from what one
    statement reads and its content is copied by the next, which must see the same rows (an example edited between
    the two would otherwise be frozen with the hash of other text). PostgreSQL: REPEATABLE READ, as the transaction's
    first statement. SQLite's transactions already are serializable; a transaction nested in another (tests) keeps
    the outer one's level."""
    if connection.vendor == "postgresql" and len(connection.atomic_blocks) == 1 and not connection.savepoint_ids:
        with connection.cursor() as cur:
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")


def _version_create(*, dataset, filters, recipe, created_by, name) -> DatasetVersion:
    """The dataset's next version number, taken under a lock on the dataset row (inside the caller's transaction)."""
    Dataset.objects.select_for_update().filter(pk=dataset.pk).first()
    number = (DatasetVersion.objects.filter(dataset=dataset).aggregate(m=Max("version"))["m"] or 0) + 1
    return DatasetVersion.objects.create(
        dataset=dataset, version=number, name=name, filters=filters, recipe=recipe,
        status=DatasetVersion.Status.BUILDING, created_by=created_by,
    )


def _build(*, dataset, filters, recipe, ids, created_by, name, progress) -> DatasetVersion:
    version = _version_create(dataset=dataset, filters=filters, recipe=recipe, created_by=created_by, name=name)
    return _members_write(version=version, ids=ids, progress=progress)


def _members_write(*, version: DatasetVersion, ids: list[int], progress) -> DatasetVersion:
    """Write the version's members (positions in `ids` order), its content hash, count and datasheet.

    Per chunk: the content is read once (the member hashes are computed here, by member_content_hash, the one
    definition clients verify against), then the database copies the rows itself (INSERT ... SELECT joined to the
    ids, positions and hashes sent as arrays): the texts are not sent back, no row is formatted in Python."""
    hasher = hashlib.sha256()
    total = len(ids)
    chunk_size = BUILD_CHUNK if connection.vendor == "postgresql" else BUILD_CHUNK_SQLITE
    for start in range(0, total, chunk_size):
        chunk = ids[start:start + chunk_size]
        rows = {r[0]: r[1:] for r in _ids_filter(Example.objects.all(), chunk).values_list(*_SNAPSHOT_FIELDS)}
        hashes = []
        for example_id in chunk:
            (q, instr, title, text, trace, label, origin, variant, domain) = rows[example_id]
            mh = member_content_hash(query_text=q, instruction=instr or "", passage_title=title or "", passage_text=text,
                                     reasoning_trace=trace or "", label=label, origin=origin, variant=variant or "",
                                     domain=domain or "")
            hasher.update(mh.encode("ascii"))
            hasher.update(b"\n")
            hashes.append(mh)
        _members_insert_select(version_id=version.pk, example_ids=chunk, first_position=start, hashes=hashes)
        if progress:
            progress(min(start + chunk_size, total), total)
    version.content_hash = hasher.hexdigest()
    version.example_count = total
    version.datasheet = dataset_version_datasheet_compute(version=version)  # once: a version never changes
    version.save(update_fields=["content_hash", "example_count", "datasheet"])
    return version


def _ids_filter(qs: QuerySet, ids: list[int]) -> QuerySet:
    """qs restricted to `ids`: on PostgreSQL one array parameter (a 10,000-value IN list costs seconds to compile)."""
    if connection.vendor == "postgresql":
        return qs.filter(id__in=RawSQL("SELECT unnest(string_to_array(%s, ',')::bigint[])", (_csv(ids),)))
    return qs.filter(id__in=ids)


def _csv(values) -> str:
    """Values as one comma-separated string: a large array sent as one parameter (joined in C), not adapted value by
    value by the driver."""
    return ",".join(map(str, values))


# A member's frozen content, copied from its example by the database (the build's one statement per chunk).
_MEMBERS_SELECT = """
    INSERT INTO curation_datasetversionmember
        (version_id, example_id, position, content_hash, reasoner_judgment, reasoner_model, prompt_versions,
         query_text, instruction, passage_title, passage_text, reasoning_trace, label, origin, variant, domain)
    SELECT %s, e.id, s.position, s.content_hash, e.reasoner_judgment, COALESCE(e.reasoner_model, ''),
           COALESCE(e.prompt_versions, {empty_json}), q.text, COALESCE(q.instruction, ''), COALESCE(p.title, ''), p.text,
           COALESCE(e.reasoning_trace, ''), e.intended_label, e.origin, COALESCE(q.variant, ''), COALESCE(q.domain, '')
    FROM {source}
         JOIN curation_example e ON e.id = s.example_id
         LEFT JOIN curation_generatedquery q ON q.id = e.query_id
         LEFT JOIN curation_passage p ON p.id = e.passage_id"""
SQLITE_MEMBER_ROWS = 300  # 3 bound variables a row: under SQLite's limit on old builds


def _members_insert_select(*, version_id: int, example_ids: list[int], first_position: int, hashes: list[str]) -> None:
    positions = range(first_position, first_position + len(example_ids))
    with connection.cursor() as cur:
        if connection.vendor == "postgresql":
            source = ("(SELECT s.example_id, (s.n - 1 + %s)::integer AS position, s.content_hash "
                      "FROM unnest(string_to_array(%s, ',')::bigint[], string_to_array(%s, ','))"
                      " WITH ORDINALITY AS s(example_id, content_hash, n)) AS s")
            cur.execute(_MEMBERS_SELECT.format(empty_json="'{}'::jsonb", source=source),
                        [version_id, first_position, _csv(example_ids), ",".join(hashes)])
            written = cur.rowcount
        else:
            written = 0
            for i in range(0, len(example_ids), SQLITE_MEMBER_ROWS):
                part = list(zip(example_ids[i:i + SQLITE_MEMBER_ROWS], positions[i:i + SQLITE_MEMBER_ROWS],
                                hashes[i:i + SQLITE_MEMBER_ROWS]))
                values = ", ".join(["(%s, %s, %s)"] * len(part))
                source = (f"(SELECT column1 AS example_id, column2 AS position, column3 AS content_hash "
                          f"FROM (VALUES {values})) AS s")
                cur.execute(_MEMBERS_SELECT.format(empty_json="'{}'", source=source),
                            [version_id, *(v for row in part for v in row)])
                written += cur.rowcount
    if written != len(example_ids):  # an example deleted since the selection (PROTECT keeps members' examples)
        raise IntegrityError(f"{len(example_ids) - written} selected example(s) vanished during the build")


# ---------------------------------------------------------------- large builds: a Celery job (issue 21)


def dataset_version_build_size(*, dataset: Dataset, filters: dict | None, recipe: dict | None) -> int:
    """How many members a build would write, at most: the mix's total, or the matching examples counted up to
    LIMRANK_BULK_JOB_THRESHOLD + 1 (a bounded count). Raises ValidationError for an invalid filter or recipe."""
    filters = dataset_version_filters_normalize(dataset=dataset, filters=filters)
    recipe = dataset_version_recipe_normalize(recipe)
    if recipe["mix"]:
        return sum(recipe["mix"].values())
    cap = settings.LIMRANK_BULK_JOB_THRESHOLD + 1
    return examples_matching(filters=filters).values("pk")[:cap].count()


def dataset_version_request(*, dataset: Dataset, filters: dict | None, recipe: dict | None, created_by=None,
                            name: str = "") -> tuple[DatasetVersion, DatasetVersionBuild | None]:
    """Build a version in the request when it is small, or queue its build as a job when it has more than
    LIMRANK_BULK_JOB_THRESHOLD members. Returns the version and its build job (None when built here)."""
    if dataset_version_build_size(dataset=dataset, filters=filters, recipe=recipe) <= settings.LIMRANK_BULK_JOB_THRESHOLD:
        return dataset_version_build(dataset=dataset, filters=filters, recipe=recipe, created_by=created_by,
                                     name=name), None
    job = dataset_version_build_queue(dataset=dataset, filters=filters, recipe=recipe, created_by=created_by, name=name)
    return job.version, job


def dataset_version_build_queue(*, dataset: Dataset, filters: dict | None, recipe: dict | None, created_by=None,
                                name: str = "") -> DatasetVersionBuild:
    """Create the version (building, no members yet) and its build job; the job's task is sent after commit.
    The filter and recipe are validated here; a recipe asking for more than there is fails the job (its error)."""
    filters = dataset_version_filters_normalize(dataset=dataset, filters=filters)
    recipe = dataset_version_recipe_normalize(recipe)
    _mix_available_check(filters=filters, recipe=recipe)
    for attempt in range(3):
        try:
            with transaction.atomic():
                version = _version_create(dataset=dataset, filters=filters, recipe=recipe, created_by=created_by,
                                          name=name)
                job = DatasetVersionBuild.objects.create(version=version, requested_by=created_by)
                job_enqueue_on_commit(DatasetVersionBuild, pk=job.pk)
            return job
        except IntegrityError:
            if attempt == 2:  # two builds raced for the same version number: take the next one
                raise
    raise AssertionError("unreachable")


def _mix_available_check(*, filters: dict, recipe: dict) -> None:
    """Refuse at once a mix that asks for more examples than match (bounded counts); near-duplicates and
    contamination dropped by the build options are only known when the job selects, which then fails with the same
    message."""
    qs = examples_matching(filters=filters)
    shortfalls = []
    for origin, count in recipe["mix"].items():
        available = qs.filter(origin=origin).values("pk")[:count].count()
        if available < count:
            shortfalls.append(f"{count} {origin} examples asked, {available} available")
    if shortfalls:
        raise ValidationError(
            {"recipe": f"the recipe asks for more examples than match the filters ({_describe(filters)}): " + "; ".join(shortfalls)})
    if not recipe["mix"] and not qs.exists():
        raise ValidationError({"filters": f"no examples match the filters ({_describe(filters)})"})


def dataset_version_build_execute(*, job: DatasetVersionBuild) -> DatasetVersion:
    """Run a claimed build job: select the members and write them, in one transaction that also sets the version's
    content hash. A version that already has its hash was built by an earlier run of this job (the worker died
    before it could say so): nothing is written again. A run that died mid-way wrote nothing (rolled back), so the
    next one builds the same version from the same filter and recipe."""
    version = job.version
    try:
        with transaction.atomic():
            _snapshot_begin()
            locked = DatasetVersion.objects.select_for_update().get(pk=version.pk)
            if not locked.content_hash:
                ids = dataset_version_select(filters=locked.filters, recipe=locked.recipe)
                job_progress_detached(job, done=0, total=len(ids))
                DatasetVersionMember.objects.filter(version=locked).delete()  # none: a failed run rolled back
                _members_write(version=locked, ids=ids,
                               progress=lambda done, total: job_progress_detached(job, done=done, total=total))
                DatasetVersion.objects.filter(pk=locked.pk).update(error="")
                transaction.on_commit(lambda: dataset_version_render_enqueue(version=locked))
            version = locked
    except Exception as exc:
        error = "; ".join(exc.messages) if isinstance(exc, ValidationError) else repr(exc)
        DatasetVersion.objects.filter(pk=version.pk).update(status=DatasetVersion.Status.FAILED,
                                                            error=f"the build failed: {error}"[:2000])
        job_finish(job, status=JobStatus.FAILED, error=error[:2000])
        if isinstance(exc, ValidationError):
            return DatasetVersion.objects.get(pk=version.pk)  # the recipe's fault: no retry would help
        raise
    job_finish(job, progress_done=version.example_count, progress_total=version.example_count)
    return version


def dataset_version_build_resume(*, version: DatasetVersion) -> bool:
    """Queue a failed (or lost) build again; False when the version has no build job or it cannot resume."""
    job = DatasetVersionBuild.objects.filter(version=version).first()
    if job is None or version.content_hash:
        return False
    with transaction.atomic():
        if not job_resume(job):
            return False
        DatasetVersion.objects.filter(pk=version.pk).update(status=DatasetVersion.Status.BUILDING, error="")
    version.refresh_from_db(fields=["status", "error"])
    return True


def dataset_version_render_enqueue(*, version: DatasetVersion) -> None:
    """Have a worker render the version's files. A broker that cannot take the task marks a building version failed,
    with the reason, rather than leaving it building for ever."""
    try:
        current_app.send_task(RENDER_TASK, args=[version.pk])  # by name: the task module imports this one
    except Exception as exc:  # noqa: BLE001 - any broker error: the reason goes to the version's row
        logger.exception("could not enqueue the render of dataset version %s", version.pk)
        DatasetVersion.objects.filter(pk=version.pk, status=DatasetVersion.Status.BUILDING).update(
            status=DatasetVersion.Status.FAILED, error=f"could not hand the render to a worker: {exc!r}"[:2000])


def dataset_version_render(*, version: DatasetVersion) -> DatasetVersion:
    """Render the version's export files (every format; those already there are kept) and mark it ready. A version
    whose render fails is marked failed with the error; a ready one (its file lost and rendered again) stays ready."""
    try:
        for fmt in exports.FORMATS:
            exports.export_render(version=version, fmt=fmt)
    except Exception as exc:
        DatasetVersion.objects.filter(pk=version.pk, status=DatasetVersion.Status.BUILDING).update(
            status=DatasetVersion.Status.FAILED, error=f"rendering the export files failed: {exc!r}"[:2000])
        version.refresh_from_db(fields=["status", "error"])
        raise
    DatasetVersion.objects.filter(pk=version.pk, status=DatasetVersion.Status.BUILDING).update(
        status=DatasetVersion.Status.READY)
    version.refresh_from_db(fields=["status", "error"])
    return version
