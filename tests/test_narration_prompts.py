"""Prompt templates: rendering, strict variables, sandbox, hashing, and custom folders."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fake_openai import FakeOpenAI, json_reply, persona

from apg.config import NarrationConfig
from apg.errors import NarrationError
from apg.narration import NarrationContext, make_narrator
from apg.narration.facts import build_fact_sheet
from apg.narration.prompts import DEFAULT_PROMPTS_DIR, PromptSet, template_hash

SHEET = build_fact_sheet(persona(), n_users=1000)


@pytest.fixture
def prompts_dir(tmp_path: Path) -> Path:
    target = tmp_path / "prompts"
    shutil.copytree(DEFAULT_PROMPTS_DIR, target)
    return target


def test_prompts_default_templates_render_every_mode():
    prompts = PromptSet()
    strict = prompts.system("json_schema")
    assert "Use only the facts on the fact sheet" in strict and '"frustrations"' not in strict
    for mode in ("json_object", "text"):
        assert "matching this JSON schema" in prompts.system(mode)
        assert '"frustrations"' in prompts.system(mode)
    user = prompts.persona(SHEET, "json_schema", ["Night owl"])
    assert user.startswith("Write the persona P1 from this fact sheet (6 facts).")
    assert 'already named "Night owl"' in user
    assert user.endswith("<fact_sheet>\n" + SHEET.render() + "\n</fact_sheet>")
    reask = prompts.reask(["summary: bad"], "text", ["A", "B"])
    assert "- summary: bad" in reask and 'Do not use any of these names: "A", "B".' in reask


def test_prompts_missing_variable_names_it_and_the_file(prompts_dir):
    (prompts_dir / "persona.j2").write_text("Persona {{ persona_name }}\n{{ fact_sheet }}")
    with pytest.raises(NarrationError) as info:
        PromptSet(prompts_dir).persona(SHEET, "text")
    message = str(info.value)
    assert str(prompts_dir / "persona.j2") in message
    assert "'persona_name' is undefined" in message
    assert "variables available to this template: avoid_names, data_close" in message


def test_prompts_undefined_attribute_of_a_variable_fails_too(prompts_dir):
    (prompts_dir / "system.j2").write_text("{{ mode.colour }}")
    with pytest.raises(NarrationError, match="has no attribute 'colour'"):
        PromptSet(prompts_dir).system("text")


def test_prompts_syntax_error_names_file_and_line(prompts_dir):
    (prompts_dir / "reask.j2").write_text("ok\n{% for e in errors %}\n{{ e }}\n")
    with pytest.raises(NarrationError, match=r"reask\.j2:3: Unexpected end of template"):
        PromptSet(prompts_dir).reask(["x"], "text")


def test_prompts_missing_files_and_partials(prompts_dir, tmp_path):
    with pytest.raises(NarrationError, match="does not exist"):
        PromptSet(tmp_path / "nowhere")
    (prompts_dir / "reask.j2").unlink()
    with pytest.raises(NarrationError, match=r"lacks reask\.j2"):
        PromptSet(prompts_dir)
    shutil.copy(DEFAULT_PROMPTS_DIR / "reask.j2", prompts_dir)
    (prompts_dir / "system.j2").write_text("{% include 'tone.j2' %}")
    with pytest.raises(NarrationError, match=r"includes 'tone\.j2'"):
        PromptSet(prompts_dir).system("text")


def test_prompts_sandbox_blocks_python_internals(prompts_dir):
    (prompts_dir / "system.j2").write_text("{{ mode.__class__.__mro__[1].__subclasses__() }}")
    with pytest.raises(NarrationError, match="unsafe"):
        PromptSet(prompts_dir).system("text")


def test_prompts_hash_covers_every_template_and_partial(prompts_dir):
    before = template_hash(prompts_dir)
    assert before == PromptSet(prompts_dir).hash == PromptSet().hash
    (prompts_dir / "tone.j2").write_text("Write in French.")
    with_partial = template_hash(prompts_dir)
    (prompts_dir / "tone.j2").write_text("Write in German.")
    assert len({before, with_partial, template_hash(prompts_dir)}) == 3


def test_prompts_broken_template_fails_before_any_request(prompts_dir, monkeypatch):
    (prompts_dir / "persona.j2").write_text("{{ nope }}")
    with FakeOpenAI([]) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.url)
        monkeypatch.setenv("OPENAI_API_KEY", "test-key")
        with pytest.raises(NarrationError, match="'nope' is undefined"):
            make_narrator(NarrationConfig(client="openai", prompts_dir=str(prompts_dir)))
    assert server.requests == []


def test_prompts_custom_folder_changes_what_the_model_reads(prompts_dir, monkeypatch, tmp_path):
    (prompts_dir / "tone.j2").write_text("Écris en français.")
    system = (prompts_dir / "system.j2").read_text()
    (prompts_dir / "system.j2").write_text(system + "\n{% include 'tone.j2' %}\n")
    reply = {
        "name": "Gros acheteur fidèle",
        "tagline": "",
        "summary": "400 clients.",
        "goals": [{"text": "a", "facts": ["F2"]}, {"text": "b", "facts": ["F3"]}],
        "frustrations": [{"text": "c", "facts": ["F2"]}, {"text": "d", "facts": ["F4"]}],
        "quote": None,
    }
    with FakeOpenAI([json_reply(reply)]) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.url)
        monkeypatch.setenv("OPENAI_API_KEY", "test-key")
        narrator = make_narrator(
            NarrationConfig(client="openai", prompts_dir=str(prompts_dir), max_retries=0)
        )
        ctx = NarrationContext(
            run_id="r", n_users=1000, outliers=None, feature_roles={}, out_dir=None
        )
        (n,) = narrator.narrate([persona()], ctx)
    assert server.requests[0].messages[0]["content"].endswith("Écris en français.")
    assert n.source == "llm" and n.template_hash == template_hash(prompts_dir)
    assert not (tmp_path / "llm_calls.jsonl").exists()  # out_dir=None writes nothing


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        ("syntax", r"persona\.j2:1: unexpected '\)'"),
        ("missing", r"lacks reask\.j2"),
        ("partial", r"tone\.j2:1: Unexpected end of template"),
    ],
)
def test_prompts_are_checked_before_the_run_reads_or_searches(
    prompts_dir, tmp_path, monkeypatch, breakage, message
):
    from apg.config import parse_config
    from apg.pipeline import run

    if breakage == "syntax":
        (prompts_dir / "persona.j2").write_text("{{ facts ) }}")
    elif breakage == "missing":
        (prompts_dir / "reask.j2").unlink()
    else:  # a partial no template includes yet: a syntax error in it still fails the run now
        (prompts_dir / "tone.j2").write_text("{% if mode %}")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    config = parse_config(
        {
            # The table does not exist: the run must stop on the templates before reading it.
            "sources": [{"kind": "file", "path": str(tmp_path / "absent.csv")}],
            "id_column": "user_id",
            "features": {"behavioral": ["a", "b"]},
            "narration": {"client": "openai", "prompts_dir": str(prompts_dir)},
        }
    )
    said: list[str] = []
    with pytest.raises(NarrationError, match=message):
        run(config, progress=said.append)
    assert said == []


def test_prompts_default_folder_is_the_checkout_when_run_from_one():
    from apg.narration.prompts import PACKAGED_PROMPTS_DIR, default_prompts_dir

    repo = Path(__file__).resolve().parents[1]
    assert default_prompts_dir() == DEFAULT_PROMPTS_DIR == repo / "prompts"
    assert repo / "apg" / "narration" / "default_prompts" == PACKAGED_PROMPTS_DIR
    assert not PACKAGED_PROMPTS_DIR.exists()  # only a built wheel has it
