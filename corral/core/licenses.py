"""License files and the license they state: rules the GitHub reader (docs/recipe/github.md) and the
embedded sample writer share, kept below both."""

from __future__ import annotations

import os
import re

_LICENSE_NAME = re.compile(r"^(?:un)?licen[cs]e|^copying|^copyright$|^notice$", re.IGNORECASE)


def is_license_file(name: str) -> bool:
    return bool(_LICENSE_NAME.match(os.path.basename(name)))


# License text fingerprints, checked in this order (the first match names a file's license); a space
# matches any run of whitespace, since license texts wrap their lines anywhere.
_FINGERPRINTS = {
    "agpl": "GNU AFFERO GENERAL PUBLIC LICENSE",
    "lgpl": "GNU LESSER GENERAL PUBLIC LICENSE|GNU LIBRARY GENERAL PUBLIC LICENSE",
    "gpl": "GNU GENERAL PUBLIC LICENSE",
    "mpl": "Mozilla Public License",
    "epl": "Eclipse Public License",
    "apache": r"Apache License,? Version 2\.0|Licensed under the Apache License",
    "mit": "Permission is hereby granted, free of charge, to any person obtaining a copy",
    "bsd": "Redistribution and use in source and binary forms, with or without modification",
    "isc": "Permission to use, copy, modify, and(?:/or)? distribute this software for any",
    "unlicense": "This is free and unencumbered software released into the public domain",
    "cc": "Creative Commons",
    "psf": "PYTHON SOFTWARE FOUNDATION LICENSE",
}
LICENSE_PATTERNS = [(name, re.compile(text.replace(" ", r"\s+"), re.I)) for name, text in _FINGERPRINTS.items()]


def detect_license(text: str) -> str | None:
    """The license family a license file's text states, or None when none is recognised."""
    for name, pattern in LICENSE_PATTERNS:
        if pattern.search(text):
            return name
    return None
