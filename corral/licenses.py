"""Which files are license files, by name: a rule the GitHub reader (RECIPE.md §4) and the embedded
sample writer share, kept below both."""

from __future__ import annotations

import os
import re

_LICENSE_NAME = re.compile(r"^(?:un)?licen[cs]e|^copying|^copyright$|^notice$", re.IGNORECASE)


def is_license_file(name: str) -> bool:
    return bool(_LICENSE_NAME.match(os.path.basename(name)))
