"""License files by name and the license a text states (corral.core.licenses)."""

import pytest

from corral.core.licenses import LICENSE_PATTERNS, detect_license, is_license_file

MIT = "Permission is hereby granted, free of charge, to any person obtaining a copy of this software"


@pytest.mark.parametrize(
    "name,expected",
    [
        ("LICENSE", True),
        ("pkg/License.txt", True),
        ("LICENCE.md", True),
        ("UNLICENSE", True),
        ("COPYING", True),
        ("copyright", True),
        ("NOTICE", True),
        ("licenses.py", True),  # a name that starts as a license file does
        ("README.md", False),
        ("src/notice_board.py", False),
        ("copyright_header.h", False),
    ],
)
def test_license_file_names(name, expected):
    assert is_license_file(name) is expected


def test_first_matching_fingerprint_names_the_license():
    assert detect_license(MIT) == "mit"
    assert detect_license(MIT.replace("person obtaining", "person\n   obtaining")) == "mit"  # wrapped lines
    assert detect_license("GNU LESSER GENERAL PUBLIC LICENSE\nVersion 2.1") == "lgpl"  # before gpl
    assert detect_license("GNU AFFERO GENERAL PUBLIC LICENSE") == "agpl"
    assert detect_license("Apache License\n   Version 2.0, January 2004") == "apache"
    assert detect_license("All rights reserved.") is None
    assert [name for name, _ in LICENSE_PATTERNS][:3] == ["agpl", "lgpl", "gpl"]
