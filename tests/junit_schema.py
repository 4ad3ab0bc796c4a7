"""Check a junit.xml against harness/outcome/junit.xsd, the project's junit-10-compatible schema."""

from __future__ import annotations

import functools
import pathlib

import xmlschema

SCHEMA_PATH = pathlib.Path(__file__).resolve().parent.parent / "harness" / "outcome" / "junit.xsd"


@functools.cache
def schema() -> xmlschema.XMLSchema10:
    """The parsed schema, built once per process."""
    return xmlschema.XMLSchema10(SCHEMA_PATH)


def validate(path: pathlib.Path) -> None:
    """Raise AssertionError, with the validator's reason, unless path is valid junit.xml."""
    try:
        schema().validate(path)
    except xmlschema.XMLSchemaValidationError as exc:
        raise AssertionError(f"{path}: {exc.reason or exc.message}") from exc
    except (xmlschema.XMLResourceError, SyntaxError) as exc:  # not well-formed XML
        raise AssertionError(f"{path}: not well-formed XML: {exc}") from exc
