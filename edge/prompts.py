"""Prompt sets: the operator's words, validated, versioned, and turned into text lists.

The YAML an operator edits is a :class:`PromptSet`. Its version is the sha256 of its
canonical JSON, so two files that say the same thing have the same version, and every
result names the version that produced it.
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from edge.errors import ConfigError, read_utf8
from edge.hashing import sha256_json
from edge.validation import describe, repeated

NAME_PATTERN = r"^[a-z0-9][a-z0-9_\-]{0,63}$"
MAX_CATEGORIES = 64  # every result carries every category's score: 64 keeps a result near 3 KB
MAX_PROMPTS = 32  # per category
MAX_TEMPLATES = 16
MAX_TEXT = 300  # characters of one prompt or template


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Category(_Strict):
    """One class the line can see: a defect, or (``ok: true``) an acceptable part."""

    name: str = Field(pattern=NAME_PATTERN, description="Short id used in results and MQTT.")
    prompts: list[str] = Field(min_length=1, max_length=MAX_PROMPTS,
                               description="Phrasings; each is put in every template.")
    ok: bool = Field(default=False, description="True for good-part classes (verdict ok).")
    threshold: float | None = Field(
        default=None, ge=0, le=1, description="Score above which this defect makes a part NG; "
        "defaults to decision.threshold.")
    exemplars: str | None = Field(
        default=None, description="Folder of reference images for few-shot prototypes.")

    @field_validator("prompts")
    @classmethod
    def _non_empty(cls, v: list[str]) -> list[str]:
        if any(not p.strip() for p in v):
            raise ValueError("prompts must not be empty strings")
        if any(len(p) > MAX_TEXT for p in v):
            raise ValueError(f"a prompt is longer than {MAX_TEXT} characters")
        return v


class Smoothing(_Strict):
    """N-of-M: a camera reports NG only when N of its last M frames were NG."""

    n: int = Field(default=1, ge=1, le=100)
    m: int = Field(default=1, ge=1, le=100)

    @model_validator(mode="after")
    def _n_le_m(self) -> Smoothing:
        if self.n > self.m:
            raise ValueError(f"n ({self.n}) must not exceed m ({self.m})")
        return self


class Decision(_Strict):
    threshold: float = Field(default=0.5, ge=0, le=1, description="Default defect threshold.")
    thresholds: dict[str, float] = Field(
        default_factory=dict, description="Per-category thresholds by name (as calibrate writes "
        "them); a category's own 'threshold' wins.")
    uncertain_margin: float = Field(
        default=0.1, ge=0, le=0.5, description="Scores within this of a threshold are 'uncertain'.")
    smoothing: Smoothing = Field(default_factory=Smoothing)
    exemplar_weight: float = Field(
        default=0.5, ge=0, le=1, description="Blend of few-shot image similarity into text scores.")


class MemorySettings(_Strict):
    """How the good-part memory is built from ``good`` (defaults measured on the demo line)."""

    # 12, not 6: escapes on the demo's tuning seeds 5.6 -> 2.8 % (demo-clip), 17.2 -> 14.7 % (demo-siglip)
    augment: int = Field(default=12, ge=0, le=32, description="Moved copies per good image (rotation, shift, "
                         "light), so that the memory knows how the line moves its parts.")
    max_angle: float = Field(default=3.0, ge=0, le=45, description="Degrees of rotation in those copies.")
    max_shift: float = Field(default=0.015, ge=0, le=0.2, description="Shift in those copies, share of the frame.")
    radius: int | None = Field(default=1, ge=0, le=8, description="Patch positions searched around a patch's own "
                               "(parts on a line are roughly registered); null: every position (PatchCore).")
    neighbourhood: Literal[1, 3] = Field(default=1, description="3: each patch token averaged with its 3x3 "
                                         "neighbours (PatchCore's locally aware features); 1: alone.")
    dim: int | None = Field(default=64, ge=8, le=4096, description="Dimensions kept (PCA of the good tokens); "
                            "null: all.")
    max_patches: int = Field(default=16384, ge=256, le=1_000_000, description="Memory size per tile (greedy "
                             "coreset).")
    margin: float = Field(default=1.0, ge=0.5, le=5.0, description="Threshold = the larger of the good images' "
                          "worst leave-one-out score and their mean + 3.5 sd, x margin (below it, the uncertain band: "
                          "decision.uncertain_margin).")


class PromptSet(_Strict):
    """An operator-editable set of categories; see DESIGN.md for the smallest valid one."""

    name: str = Field(min_length=1, max_length=128)
    templates: list[str] = Field(default_factory=lambda: ["{}"], min_length=1, max_length=MAX_TEMPLATES)
    categories: list[Category] = Field(min_length=2, max_length=MAX_CATEGORIES)
    decision: Decision = Field(default_factory=Decision)
    good: str | None = Field(default=None, description="Folder of good parts' images (frames of this camera): a "
                             "good-part memory finds where a frame differs, the prompts name what it is.")
    memory: MemorySettings = Field(default_factory=MemorySettings)

    @field_validator("templates")
    @classmethod
    def _templates_have_slot(cls, v: list[str]) -> list[str]:
        for t in v:
            try:
                fields = [f for _, f, _, _ in string.Formatter().parse(t) if f is not None]
            except ValueError as err:  # an unmatched brace
                raise ValueError(f"template {t!r}: {err}; write '{{}}' for the prompt and '{{{{' for a brace") from err
            if fields != [""]:
                raise ValueError(f"template {t!r} must contain '{{}}' exactly once and no other '{{...}}' field")
            if len(t) > MAX_TEXT:
                raise ValueError(f"template {t[:40]!r}... is longer than {MAX_TEXT} characters")
        return v

    @model_validator(mode="after")
    def _names_and_ok(self) -> PromptSet:
        names = [c.name for c in self.categories]
        dupes = repeated(names)
        if dupes:
            raise ValueError(f"category names must be unique, repeated: {', '.join(dupes)}")
        if not any(c.ok for c in self.categories):
            raise ValueError("at least one category needs 'ok: true' (the good part)")
        if all(c.ok for c in self.categories):
            raise ValueError("at least one category must be a defect (without 'ok: true')")
        unknown = sorted(set(self.decision.thresholds) - set(names))
        if unknown:
            raise ValueError(f"decision.thresholds names unknown categor{'ies' if len(unknown) > 1 else 'y'} "
                             f"{', '.join(unknown)}; known: {', '.join(names)}")
        bad = {k: v for k, v in self.decision.thresholds.items() if not 0 <= v <= 1}
        if bad:
            raise ValueError(f"decision.thresholds must be within [0, 1], got {bad}")
        return self

    @property
    def version(self) -> str:
        """sha256 of the canonical JSON; keys added after version 0.1 count only when set, so a set
        written before them keeps its version."""
        data = self.model_dump(mode="json")
        if data["good"] is None:
            del data["good"]
        if self.memory == MemorySettings():
            del data["memory"]
        return sha256_json(data)[:16]

    def texts(self, category: Category) -> list[str]:
        """Every prompt of a category in every template (ensembled into one embedding)."""
        return [t.format(p) for p in category.prompts for t in self.templates]

    def threshold(self, category: Category) -> float:
        if category.threshold is not None:
            return category.threshold
        return self.decision.thresholds.get(category.name, self.decision.threshold)


def parse_prompt_set(data: object, source: str) -> PromptSet:
    """Validate a mapping; the error names the source and the field."""
    try:
        return PromptSet.model_validate(data)
    except ValidationError as err:
        raise ConfigError(f"{source}: field {describe(err)}; fix the prompt set.") from err


def load_prompt_set(path: str | Path) -> PromptSet:
    """Read an operator YAML file."""
    path = Path(path)
    try:
        text = read_utf8(path, "save the prompt set as UTF-8")
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the prompt set ({err.strerror}); check the path.") from err
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML{where}; fix the syntax.") from err
    return parse_prompt_set(data, str(path))
