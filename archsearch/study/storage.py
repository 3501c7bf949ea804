"""Ledger storage URLs: masking for display (placeholder until the storage module lands)."""

from __future__ import annotations


def mask_url(url: str) -> str:
    """``url`` with any password replaced by ``***``."""
    try:
        from sqlalchemy.engine import make_url

        u = make_url(url)
        return u.render_as_string(hide_password=True) if u.password else url
    except Exception:  # not a URL SQLAlchemy can parse: show no credentials at all
        return url.split("@", 1)[-1] if "@" in url else url
