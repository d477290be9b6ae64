"""Prompt templates: Jinja2 files in ``prompts/``, rendered sandboxed with ``StrictUndefined``.

The templates are the documented way to change tone or language. ``system.j2`` and
``persona.j2`` start a conversation, ``reask.j2`` answers a rejected reply; partials may be
included from the same folder. The hash of every ``*.j2`` file in the folder is recorded with
each narrative and LLM call, so any text can be traced to the templates that produced it.

The default folder is the checkout's ``prompts/`` when apg runs from one (an editable install:
edits there take effect), else the copy a wheel carries in ``apg/narration/default_prompts/``
(``setup.py`` copies ``prompts/*.j2`` there at build time; ``prompts/`` stays the one source).
``check_prompts`` is called before a run's search, so a broken template costs no search time.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from jinja2 import (
    FileSystemLoader,
    StrictUndefined,
    TemplateError,
    TemplateNotFound,
    TemplateSyntaxError,
    UndefinedError,
)
from jinja2.sandbox import SandboxedEnvironment

from apg.errors import NarrationError
from apg.narration.base import Mode
from apg.narration.facts import Fact, FactSheet
from apg.narration.grounding import MAX_ITEMS, MIN_ITEMS, PersonaReply
from apg.narration.labels import DATA_CLOSE, DATA_OPEN, clean

SYSTEM, PERSONA, REASK = "system.j2", "persona.j2", "reask.j2"
MODES: tuple[Mode, ...] = ("json_schema", "json_object", "text")
PACKAGED_PROMPTS_DIR = Path(__file__).resolve().parent / "default_prompts"


def default_prompts_dir() -> Path:
    """The checkout's ``prompts/`` (next to ``pyproject.toml``), else the packaged copy."""
    root = Path(__file__).resolve().parents[2]
    source = root / "prompts"
    if (root / "pyproject.toml").is_file() and (source / SYSTEM).is_file():
        return source
    return PACKAGED_PROMPTS_DIR


DEFAULT_PROMPTS_DIR = default_prompts_dir()
# A sheet to render every template with once, before any search or request.
SAMPLE_SHEET = FactSheet(
    persona_id="P0",
    size=10,
    share=0.1,
    n_users=100,
    facts=[
        Fact(
            id="F1", kind="size", text="This persona has 10 users: 10% of the 100 users clustered."
        )
    ],
)


def reply_schema() -> str:
    return json.dumps(PersonaReply.model_json_schema(), indent=1, ensure_ascii=False)


def template_hash(directory: Path) -> str:
    """sha256 over every ``*.j2`` file of ``directory`` (names and contents), 16 hex digits."""
    digest = hashlib.sha256()
    for path in sorted(directory.rglob("*.j2")):
        digest.update(path.relative_to(directory).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


class PromptSet:
    """The templates of one folder; ``render`` raises ``NarrationError`` naming file and cause."""

    def __init__(self, directory: str | Path | None = None) -> None:
        self.directory = Path(directory) if directory else DEFAULT_PROMPTS_DIR
        if not directory and not self.directory.is_dir():
            raise NarrationError(
                f"the default prompts folder {str(self.directory)!r} does not exist: this apg "
                "was installed without its templates; reinstall it from a wheel or `pip install "
                ".` of the repository (setup.py packs prompts/), or set narration.prompts_dir "
                f"to a folder holding {SYSTEM}, {PERSONA} and {REASK}"
            )
        if not self.directory.is_dir():
            raise NarrationError(
                f"prompts folder {str(self.directory)!r} does not exist; set narration.prompts_dir "
                f"to a folder holding {SYSTEM}, {PERSONA} and {REASK}"
            )
        missing = [n for n in (SYSTEM, PERSONA, REASK) if not (self.directory / n).is_file()]
        if missing:
            raise NarrationError(
                f"prompts folder {str(self.directory)!r} lacks {', '.join(missing)}; copy them "
                f"from the repository's prompts/ folder"
            )
        self.env = SandboxedEnvironment(
            loader=FileSystemLoader(self.directory),
            undefined=StrictUndefined,
            autoescape=False,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.hash = template_hash(self.directory)

    def render(self, name: str, variables: dict[str, Any]) -> str:
        where = self.directory / name
        try:
            return self.env.get_template(name).render(**variables).strip()
        except UndefinedError as exc:
            raise NarrationError(
                f"{where}: {exc.message}; variables available to this template: "
                f"{', '.join(sorted(variables))}"
            ) from None
        except TemplateSyntaxError as exc:
            raise NarrationError(f"{exc.filename or where}:{exc.lineno}: {exc.message}") from None
        except TemplateNotFound as exc:
            raise NarrationError(
                f"{where}: includes {exc.name!r}, which is not in {str(self.directory)!r}"
            ) from None
        except TemplateError as exc:
            raise NarrationError(f"{where}: {exc}") from None

    def common(self, mode: str) -> dict[str, Any]:
        """Variables every template gets."""
        return {
            "mode": mode,
            "schema": reply_schema(),
            "min_items": MIN_ITEMS,
            "max_items": MAX_ITEMS,
            "data_open": DATA_OPEN,
            "data_close": DATA_CLOSE,
        }

    def system(self, mode: str) -> str:
        return self.render(SYSTEM, self.common(mode))

    def persona(self, sheet: FactSheet, mode: str, avoid_names: list[str] | None = None) -> str:
        facts = [{"id": f.id, "kind": f.kind, "text": f.text} for f in sheet.facts]
        return self.render(
            PERSONA,
            {
                **self.common(mode),
                "persona_id": sheet.persona_id,
                "facts": facts,
                "fact_sheet": sheet.render(),
                "n_users": sheet.n_users,
                "size": sheet.size,
                "share": sheet.share,
                "avoid_names": [clean(n) for n in avoid_names or []],
            },
        )

    def reask(self, errors: list[str], mode: str, avoid_names: list[str] | None = None) -> str:
        return self.render(
            REASK,
            {
                **self.common(mode),
                "errors": [clean(e, 400) for e in errors],
                "avoid_names": [clean(n) for n in avoid_names or []],
            },
        )

    def validate(self, sheet: FactSheet = SAMPLE_SHEET) -> None:
        """Parse every ``*.j2`` file and render the three templates in every mode, so a broken
        template fails before the search and before any network call."""
        for path in sorted(self.directory.rglob("*.j2")):
            name = path.relative_to(self.directory).as_posix()
            try:
                self.env.get_template(name)
            except TemplateSyntaxError as exc:
                raise NarrationError(
                    f"{exc.filename or path}:{exc.lineno}: {exc.message}"
                ) from None
        for mode in MODES:
            self.system(mode)
            self.persona(sheet, mode, ["Example name"])
            self.reask(["summary: example problem"], mode, ["Example name"])


def check_prompts(directory: str | Path | None = None) -> PromptSet:
    """The prompt templates of ``narration.prompts_dir`` (or the default), checked."""
    prompts = PromptSet(directory)
    prompts.validate()
    return prompts
