"""A built wheel carries the default prompts: install it into a fresh virtualenv and narrate.

The wheel is built from a copy of the working tree (so the build leaves nothing in the
repository) and installed with ``--no-deps`` into a new virtualenv whose only link to this one
is a ``.pth`` line naming this environment's site-packages, for the dependencies. ``.pth``
files in a directory named that way are not processed, so the editable apg of this
environment (a ``.pth`` import hook) stays invisible: the test checks which apg it imports.
Then ``apg run --llm openai`` runs from a folder outside the repository, through the fake
OpenAI server.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from fake_openai import FakeOpenAI, Reply, Request, json_reply

from apg.narration.prompts import template_hash

REPO = Path(__file__).resolve().parents[1]
SOURCE = ("apg", "prompts", "pyproject.toml", "setup.py", "MANIFEST.in", "README.md")
NAMES = ["Quiet regulars", "Busy explorers", "Careful planners", "Weekend browsers"]


def _run(args: list[str | Path], **kwargs: object) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=300, **kwargs
    )
    assert done.returncode == 0, f"{args}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def _reply(req: Request) -> Reply:
    """A reply that passes the grounding check for any persona: no numbers, cited facts."""
    match = re.search(r"Write the persona P(\d+)", req.text())
    assert match, req.text()[:500]
    item = {"text": "Keep doing what works for them", "facts": ["F1"]}
    return json_reply(
        {
            "name": NAMES[int(match.group(1)) % len(NAMES)],
            "tagline": "A group that stands apart from everyone else",
            "summary": "This group uses the product in its own way.",
            "goals": [item, {"text": "Save time", "facts": ["F2"]}],
            "frustrations": [item, {"text": "Unclear value", "facts": ["F2"]}],
            "quote": None,
        }
    )


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with apg installed from a wheel built here."""
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "default_prompts")
    for name in SOURCE:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=ignore)
        else:
            shutil.copy2(path, src / name)
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    pip = [sys.executable, "-m", "pip"]
    # With build isolation: the build needs setuptools>=77 (from the package index).
    _run([*pip, "wheel", src, "--no-deps", "-q", "-w", root / "dist"], env=env)
    (wheel,) = (root / "dist").glob("apg-*.whl")
    venv = root / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv])
    python = venv / "bin" / "python"
    _run([*pip, "--python", python, "install", "--no-deps", "--no-index", "-q", wheel], env=env)
    site = Path(
        _run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]
        ).stdout.strip()
    )
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "zz_apg_test_dependencies.pth").write_text("\n".join(sorted(deps)) + "\n")
    return venv


@pytest.mark.slow
def test_wheel_carries_the_prompts_and_narrates_through_openai(wheel_venv, tmp_path):
    python, apg = wheel_venv / "bin" / "python", wheel_venv / "bin" / "apg"
    env = {
        k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
    }
    where = _run(
        [
            python,
            "-c",
            "import apg.narration.prompts as p; print(p.__file__); print(p.DEFAULT_PROMPTS_DIR)",
        ],
        cwd=tmp_path,
        env=env,
    ).stdout.split()
    site = str(wheel_venv.resolve())
    assert where[0].startswith(site), f"imported apg from {where[0]}, not the wheel"
    packaged = Path(where[1])
    assert packaged.parts[-3:] == ("apg", "narration", "default_prompts")
    assert str(packaged).startswith(site)
    assert template_hash(packaged) == template_hash(REPO / "prompts")

    work = tmp_path / "elsewhere"  # not the repository: nothing found relative to it
    work.mkdir()
    _run([apg, "sample", "--rows", "300", "--seed", "0", "--out", "users.csv"], cwd=work, env=env)
    with FakeOpenAI(_reply) as server:
        env.update(OPENAI_BASE_URL=server.url, OPENAI_API_KEY="sk-wheel-test")
        args = ["--data", "users.csv", "--id", "user_id", "--k", "3", "--algorithms", "kmeans"]
        args += ["--behavioral", "logins_per_month,sessions_per_week,purchases_per_year,nps"]
        args += ["--llm", "openai", "--model", "fake-model", "--no-store", "--out", "out"]
        done = _run([apg, "run", *args], cwd=work, env=env)
    assert "drafted by the model" in done.stderr
    personas = json.loads((work / "out" / "personas.json").read_text())["personas"]
    narratives = [p["narrative"] for p in personas]
    assert len(narratives) == 3 and {n["source"] for n in narratives} == {"llm"}
    assert {n["template_hash"] for n in narratives} == {template_hash(REPO / "prompts")}
    calls = (work / "out" / "llm_calls.jsonl").read_text().splitlines()
    assert len(calls) == len(server.requests) == 3
    assert all(r.body["max_tokens"] == 1024 for r in server.requests)
