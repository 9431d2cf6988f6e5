"""What a generation run is asked to do, as one typed value with its defaults and limits in one place.

The browser form, the `synthesize` command and `generation_run_create` all build a GenerationParams; the run stores
`to_dict()` in GenerationRun.params (next to what the service adds: the sampled seed and persona ids and the prompt
versions it froze), and the executor reads it back with `from_stored`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from django.core.exceptions import ValidationError

# (lowest, highest) allowed; None: no bound on that side.
LIMITS: dict[str, tuple[float | None, float | None]] = {
    "n_seeds": (0, None),
    "n_personas": (0, None),
    "in_flight": (1, 512),
    "consistency_k": (1, 15),
    "n_hard_negatives": (1, 5),
    "temperature": (0.0, 2.0),
    "reasoner_temperature": (0.0, 2.0),
}


@dataclass(frozen=True)
class GenerationParams:
    n_seeds: int = 10  # seed queries to sample
    n_personas: int = 5  # personas to sample; every seed meets every persona
    random_seed: int = 12345  # the sample and nothing else: the same seed picks the same seeds and personas
    in_flight: int = 16  # LLM calls open at once
    consistency_k: int = 1  # reasoner samples per pair; the majority decides when k > 1
    n_hard_negatives: int = 2  # hard negatives written per rewritten query
    generator_model: str = ""  # empty: LIMRANK_GENERATOR_MODEL
    reasoner_model: str = ""  # empty: LIMRANK_REASONER_MODEL
    temperature: float = 0.8  # generator sampling temperature
    reasoner_temperature: float = 0.6  # reasoner sampling temperature

    def __post_init__(self):
        errors = {}
        for f in fields(self):
            value = getattr(self, f.name)
            kind = float if f.type in ("float", float) else int if f.type in ("int", int) else str
            if kind is str:
                if not isinstance(value, str):
                    errors[f.name] = "must be text"
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
                errors[f.name] = f"must be {'an integer' if kind is int else 'a number'}, not {value!r}"
                continue
            lo, hi = LIMITS.get(f.name, (None, None))
            if (lo is not None and value < lo) or (hi is not None and value > hi):
                bounds = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
                errors[f.name] = f"{f.name} must be {bounds}"
        if errors:
            raise ValidationError({name: [message] for name, message in errors.items()})

    @classmethod
    def build(cls, **values: Any) -> GenerationParams:
        """From keyword values (form data, command options, API input): an unknown name is a ValidationError."""
        unknown = sorted(set(values) - FIELD_NAMES)
        if unknown:
            raise ValidationError({name: ["not a generation parameter"] for name in unknown})
        return cls(**values)

    @classmethod
    def from_stored(cls, params: dict) -> GenerationParams:
        """From a run's stored params; what a run made before a field existed did not set takes the default."""
        return cls(**{k: v for k, v in (params or {}).items() if k in FIELD_NAMES})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


FIELD_NAMES = frozenset(f.name for f in fields(GenerationParams))
DEFAULTS = GenerationParams()
