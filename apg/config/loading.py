"""Reading a config: YAML with unique keys and bounded size, ``${ENV}`` interpolation,
validation errors as one readable message."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from apg.config.model import Config
from apg.errors import ConfigError
from apg.sources import SOURCE_KINDS
from apg.sources.masking import mask_secrets

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def interpolate_env(value: Any, where: str = "") -> Any:
    """Replace ``${VAR}`` in every string of a parsed YAML tree with the environment value."""
    if isinstance(value, str):

        def sub(m: re.Match[str]) -> str:
            name = m.group(1)
            if name not in os.environ:
                raise ConfigError(
                    f"{where or 'config'}: environment variable {name!r} is not set; "
                    f"export it or remove ${{{name}}} from the config"
                )
            return os.environ[name]

        return _ENV.sub(sub, value)
    if isinstance(value, dict):
        return {
            k: interpolate_env(v, f"{where}.{k}" if where else str(k)) for k, v in value.items()
        }
    if isinstance(value, list):
        return [interpolate_env(v, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


_TYPE_TAG = re.compile(
    r"function-(before|after|wrap|plain)\[.*\]|literal\[.*\]|list\[.*\]|dict\[.*\]"
    r"|constrained-\w+|int|float|str|bool|none|lax-or-strict\[.*\]|json-or-python\[.*\]"
)


def format_validation_error(exc: ValidationError, origin: str) -> str:
    """One line per problem, each naming the key path, e.g. ``search.kmeans.kk``."""
    lines = []
    for err in exc.errors():
        # Drop pydantic's union-member tags (the source `kind` after a list index, validator
        # and type names) so paths read like the YAML. The last part of an unknown-key error
        # is the user's own key and always kept.
        parts = list(err["loc"])
        loc: list[int | str] = []
        for i, part in enumerate(parts):
            own_key = err["type"] == "extra_forbidden" and i == len(parts) - 1
            kind_tag = (
                isinstance(part, str)
                and bool(loc)
                and loc[0] == "sources"  # notify[0].events is a key, not the events kind
                and part in SOURCE_KINDS
                and (isinstance(loc[-1], int) or loc[-1] == "from")
            )
            type_tag = isinstance(part, str) and _TYPE_TAG.fullmatch(part) is not None
            if own_key or not (kind_tag or type_tag):
                loc.append(part)
        path = _loc(tuple(loc))
        if err["type"] == "extra_forbidden":
            lines.append(
                f"unknown key {path!r}; check the spelling against the README's config reference"
            )
        elif err["type"] == "missing":
            lines.append(f"missing required key {path!r}")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(
                f"{path or 'config'}: {msg} (got {err.get('input')!r})"
                if err["type"] != "value_error"
                else f"{path or 'config'}: {msg}"
            )
    # The offending input is echoed back; a source URL in it may carry a password.
    return mask_secrets(f"{origin}: invalid config:\n  " + "\n  ".join(lines))


# A real config has a few hundred values. YAML aliases let a short file name the same list
# many times over ("billion laughs"): safe_load shares the nodes, but anything that walks the
# tree (interpolation, validation) would visit every repeat.
MAX_CONFIG_VALUES = 100_000
MAX_CONFIG_BYTES = 1 << 20


def check_config_size(data: Any, origin: str, budget: int = MAX_CONFIG_VALUES) -> None:
    """Raise when walking ``data`` would visit more than ``budget`` values (aliases counted
    at every place they are used); stops walking as soon as it knows."""
    stack, seen = [data], 0
    while stack:
        value = stack.pop()
        seen += 1
        if seen > budget:
            raise ConfigError(
                f"{origin}: the config expands to more than {budget:,} values (YAML aliases "
                "repeating large anchors?); write the values out or shorten the lists"
            )
        if isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)


def parse_config(data: Any, origin: str = "config", base_dir: Path | None = None) -> Config:
    if not isinstance(data, dict):
        raise ConfigError(
            f"{origin}: the config must be a mapping of keys, got {type(data).__name__}"
        )
    check_config_size(data, origin)
    data = interpolate_env(data)
    try:
        cfg = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, origin)) from None
    if base_dir is not None:
        cfg.base_dir = base_dir
    prompts = cfg.narration.prompts_dir
    if prompts and not Path(prompts).expanduser().is_absolute():
        # Like source paths: relative to the config file, not to where apg was started.
        cfg.narration.prompts_dir = str(cfg.base_dir / prompts)
    return cfg


class _UniqueKeyLoader(yaml.SafeLoader):
    """``safe_load`` that refuses a key given twice in one mapping (YAML keeps the last one,
    silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"key {key!r} is given twice (lines {seen[key]} and {line}); keep one",
                    key_node.start_mark,
                )
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def load_config(path: Path) -> Config:
    """Read a YAML config; relative paths inside it resolve against its folder."""
    if path.is_dir():
        raise ConfigError(f"config {str(path)!r} is a folder; pass a YAML file as --config FILE")
    if not path.is_file():
        raise ConfigError(
            f"config file {str(path)!r} does not exist; pass an existing --config FILE"
        )
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"{path}: {path.stat().st_size:,} bytes is too large for a config (at most "
            f"{MAX_CONFIG_BYTES:,}); is it the right file?"
        )
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)
    except yaml.MarkedYAMLError as exc:
        # One line: where, and what is wrong (PyYAML's own text quotes the source around it).
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file") from None
    return parse_config(data, str(path), base_dir=path.resolve().parent)
