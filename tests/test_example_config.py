"""The annotated example config documents every key and is itself valid."""

from __future__ import annotations

from pathlib import Path

from clgwd.config import ClgwdConfig, load_config

ROOT = Path(__file__).resolve().parent.parent


def _keys(model: type[ClgwdConfig] | type, prefix: str = "") -> set[str]:
    from pydantic import BaseModel

    keys = set()
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        keys.add(path)
        annotation = field.annotation
        inner = getattr(annotation, "__args__", (annotation,))
        for candidate in inner:
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                keys |= _keys(candidate, path + ".")
    return keys


def test_example_config_loads() -> None:
    config = load_config(ROOT / "clgwd.example.yaml")
    assert isinstance(config, ClgwdConfig)


def test_example_config_mentions_every_key() -> None:
    """Adding a config key without documenting it fails here."""
    text = (ROOT / "clgwd.example.yaml").read_text()
    missing = [key for key in sorted(_keys(ClgwdConfig))
               if f"{key.rsplit('.', 1)[-1]}:" not in text]
    assert missing == []
