"""A tenant's name, as every setting, token and policy spells it (core.settings, core.sources,
core.tokens read it from here)."""
from __future__ import annotations

import re

_TENANT = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


def tenant_name(text: str) -> str:
    """A tenant's name: lower-case letters, digits, '.', '_' and '-', at most 64 characters."""
    if not _TENANT.match(text):
        raise ValueError("expected a tenant name: lower-case letters, digits, '.', '_' or '-' (at most 64), "
                         "starting with a letter or digit")
    return text
