"""`${env:VAR}` and `${env:VAR:-default}` in config values, as the OTel Collector spells them.

Substitution is done on parsed string scalars, not on the raw text, so an error can name the
key it happened at and a value can never inject YAML structure. `$$` stands for a literal `$`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_PATTERN = re.compile(r"\$\$|\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class EnvError(ValueError):
    pass


def substitute(value: str, environ: Mapping[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        found = environ.get(name)
        if found is None or (found == "" and default is not None):
            if default is None:
                raise EnvError(f"environment variable {name} is not set")
            return default
        return found

    return _PATTERN.sub(replace, value)
