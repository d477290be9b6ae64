"""Build hook: a wheel (and a non-editable ``pip install .``) carries the default prompts.

The templates are edited in ``prompts/`` at the top of the repository, which is outside the
``apg`` package, so package data cannot name them. At build time this copies every
``prompts/**/*.j2`` into ``apg/narration/default_prompts/`` of the build, which is where
``apg.narration.prompts`` looks when apg does not run from a checkout. An editable install
copies nothing: it reads ``prompts/`` itself, so edits there take effect. All other metadata
is in pyproject.toml.
"""

from __future__ import annotations

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.errors import FileError

PROMPTS = Path(__file__).resolve().parent / "prompts"
PACKAGED = ("apg", "narration", "default_prompts")


class BuildPyWithPrompts(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        if not (PROMPTS / "system.j2").is_file():
            raise FileError(f"{PROMPTS}: no system.j2 here; the build needs the prompts/ folder")
        templates = sorted(PROMPTS.rglob("*.j2"))
        target = Path(self.build_lib).joinpath(*PACKAGED)
        for path in templates:
            dest = target / path.relative_to(PROMPTS)
            self.mkpath(str(dest.parent))
            self.copy_file(str(path), str(dest))

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        target = Path(self.build_lib).joinpath(*PACKAGED)
        extra = [str(target / p.relative_to(PROMPTS)) for p in PROMPTS.rglob("*.j2")]
        return [*super().get_outputs(include_bytecode), *extra]


setup(cmdclass={"build_py": BuildPyWithPrompts})
