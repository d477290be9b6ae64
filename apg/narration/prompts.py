"""Prompt templates: Jinja2 files in ``prompts/``, rendered sandboxed with ``StrictUndefined``.

The templates are the documented way to change tone or language. ``system.j2`` and
``persona.j2`` start a conversation, ``reask.j2`` answers a rejected reply; partials may be
included from the same folder. The hash of every ``*.j2`` file in the folder is recorded with
each narrative and LLM call, so any text can be traced to the templates that produced it.
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
from apg.narration.facts import FactSheet
from apg.narration.grounding import MAX_ITEMS, MIN_ITEMS, PersonaReply
from apg.narration.labels import DATA_CLOSE, DATA_OPEN, clean

DEFAULT_PROMPTS_DIR = Path(__file__).resolve().parents[2] / "prompts"
SYSTEM, PERSONA, REASK = "system.j2", "persona.j2", "reask.j2"
MODES: tuple[Mode, ...] = ("json_schema", "json_object", "text")


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

    def validate(self, sheet: FactSheet) -> None:
        """Render every template once, so a broken template fails before any network call."""
        for mode in MODES:
            self.system(mode)
            self.persona(sheet, mode, ["Example name"])
            self.reask(["summary: example problem"], mode, ["Example name"])
