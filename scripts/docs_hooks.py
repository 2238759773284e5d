"""MkDocs hooks: pages generated from the code at build time, and the committed results served
beside the docs, so the site cannot drift from what it documents.

- ``reference/configuration.md``: every scenario field with its type, default and description,
  walked from the pydantic schema (``marlmod.config.Scenario``).
- ``reference/api.md``: every marlmod module, rendered from its docstrings by mkdocstrings.
- ``results/``: the committed results index (``results/README.md``), every run's
  ``summary.md``, plots and printed benchmark outputs, so the pages can link and show them.
"""

from __future__ import annotations

import pkgutil
import sys
import typing
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

ROOT = Path(__file__).resolve().parent.parent
RESULT_SUFFIXES = (".md", ".png", ".txt")  # .txt: printed benchmark outputs


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    if str(ROOT) not in sys.path:  # marlmod from this checkout, as mkdocstrings reads it
        sys.path.insert(0, str(ROOT))
    return config


def on_files(files: Files, config: MkDocsConfig) -> Files:
    files.append(File.generated(config, "reference/configuration.md", content=config_page()))
    files.append(File.generated(config, "reference/api.md", content=api_page()))
    for path in sorted((ROOT / "results").rglob("*")):
        if path.suffix in RESULT_SUFFIXES and path.is_file():
            files.append(
                File(
                    path.relative_to(ROOT).as_posix(),
                    src_dir=str(ROOT),
                    dest_dir=config["site_dir"],
                    use_directory_urls=config["use_directory_urls"],
                )
            )
    return files


# ---------------------------------------------------------------- configuration reference
def config_page() -> str:
    from marlmod.config import Scenario

    parts = [
        "# Configuration reference",
        "",
        "Every field of a scenario config, generated from the schema (`marlmod/config.py`) when",
        "this site is built. Keys nest as written in YAML (`ppo.n_steps` is `n_steps` under",
        "`ppo:`); unknown keys, wrong types and out-of-range values are refused at load with the",
        "key's path (`marlmod validate CONFIG`). *required* fields have no default. How files",
        "combine (`extends`, `--set`): `configs/README.md`.",
        "",
    ]
    for title, model, rows in sections(Scenario):
        parts += [f"## `{title}`" if title else "## Top level", "", doc_line(model), ""]
        parts += ["| key | type | default | description |", "|---|---|---|---|"]
        parts += [f"| `{key}` | {kind} | {default} | {text} |" for key, kind, default, text in rows]
        parts.append("")
    return "\n".join(parts)


def sections(model: type[BaseModel], prefix: str = "") -> list[tuple[str, type, list]]:
    """``(section path, model, rows)`` for ``model`` and every model nested in it."""
    rows, nested = [], []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        sub = nested_model(field.annotation)
        if sub is not None:
            optional = type(None) in typing.get_args(field.annotation)
            text = cell(field.description or doc_line(sub))
            rows.append((key, "section" + (", optional" if optional else ""), "", text))
            nested += sections(sub, f"{key}.")
            continue
        rows.append((key, type_name(field.annotation), default_of(field), cell(field.description)))
    return [(prefix.rstrip("."), model, rows), *nested]


def nested_model(annotation: Any) -> type[BaseModel] | None:
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def type_name(annotation: Any) -> str:
    text = str(annotation) if not isinstance(annotation, type) else annotation.__name__
    text = text.replace("typing.", "").replace("NoneType", "None")
    return f"`{text}`"  # a code span: its pipes and brackets are literal in a table cell


def default_of(field: Any) -> str:
    if field.default is PydanticUndefined and field.default_factory is None:
        return "*required*"
    value = field.default_factory() if field.default_factory is not None else field.default
    if isinstance(value, BaseModel):
        return "(section defaults)"
    return f"`{value!r}`"


def doc_line(model: type) -> str:
    doc = (model.__doc__ or "").strip()
    return cell(" ".join(doc.split("\n\n")[0].split()))


def cell(text: str | None) -> str:
    """Text fit for one Markdown table cell (no pipes, no brackets read as links)."""
    text = " ".join((text or "").split()).replace("|", "\\|")
    return text.replace("[", "\\[").replace("]", "\\]")


# ---------------------------------------------------------------- API reference
def api_page() -> str:
    import marlmod

    modules = sorted(
        f"marlmod.{info.name}"
        for info in pkgutil.walk_packages(marlmod.__path__, "")
        if not info.name.startswith("_")
    )
    parts = [
        "# API reference",
        "",
        "Every module of the `marlmod` package, generated from its docstrings when this site is",
        "built. The modules the [walkthrough](../walkthrough.md) calls are the public entry",
        "points of the method: `marlmod.environments`, `marlmod.train`, `marlmod.rollout`,",
        "`marlmod.record`, `marlmod.locate`, `marlmod.prune`, `marlmod.retrain` and",
        "`marlmod.metrics`.",
        "",
    ]
    for module in modules:
        parts += [f"::: {module}", ""]
    return "\n".join(parts)
