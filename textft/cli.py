"""The command line shared by textft-train, textft-predict, textft-push, textft-search and textft-export: `key=value`
settings parsed into a flat dataclass, `--flags`, and one-line errors with exit status 2."""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable
from typing import Any

from omegaconf import ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from textft.config import TextftError


def split_argv(argv: list[str], usage: str, flags: tuple[str, ...] = ()) -> tuple[list[str], set[str]]:
    """argv -> (key=value pairs, flags); prints `usage` and exits on --help or no arguments."""
    if not argv or "-h" in argv or "--help" in argv:
        print(usage)
        raise SystemExit(0)
    given = [a for a in argv if a.startswith("--")]
    unknown = [f for f in given if f not in flags]
    if unknown:
        known = ", ".join((*flags, "--help"))
        raise TextftError(f"unknown flag {unknown[0]}; flags: {known} (settings are key=value)")
    pairs = [a for a in argv if not a.startswith("--")]
    bad = [a for a in pairs if "=" not in a]
    if bad:
        raise TextftError(f"argument '{bad[0]}' is not key=value (see --help)")
    return pairs, set(given)


def parse_settings(schema: type, pairs: list[str], command: str) -> Any:
    """`key=value` pairs -> an instance of a flat settings dataclass; unknown or missing keys are one-line errors."""
    valid = [f.name for f in dataclasses.fields(schema)]
    for item in pairs:
        key = item.split("=", 1)[0]
        if key not in valid:
            close = difflib.get_close_matches(key, valid, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"valid keys: {', '.join(valid)}"
            raise TextftError(f"{command}: unknown setting '{key}'; {hint}")
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), OmegaConf.from_dotlist(pairs))
        missing = sorted(OmegaConf.missing_keys(merged))
        if missing:
            raise TextftError(f"{command}: '{missing[0]}' is required; pass {missing[0]}=... (see --help)")
        obj = OmegaConf.to_object(merged)
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None) or "?"
        raise TextftError(f"{command}: setting '{key}': {str(e).splitlines()[0]}") from None
    for f in dataclasses.fields(obj):
        if isinstance(getattr(obj, f.name), ListConfig):
            setattr(obj, f.name, list(getattr(obj, f.name)))
    return obj


def run_command(action: Callable[[Any], Any], schema: type, usage: str, command: str, argv: list[str] | None) -> None:
    """The body of a `key=value` console script: parse argv into `schema`, run `action`, print its JSON result;
    a TextftError becomes one line on stderr and exit status 2."""
    import json
    import logging
    import sys

    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    try:
        pairs, _ = split_argv(sys.argv[1:] if argv is None else argv, usage)
        result = action(parse_settings(schema, pairs, command))
    except TextftError as e:
        print(f"textft: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    if result is not None:
        print(json.dumps(result))
