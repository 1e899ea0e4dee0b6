"""The spec's pagination: zero-based `page`, `page_size` (default 25), a `pagination` object."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from control.api.query import int_param
from control.api.routing import query

DEFAULT_PAGE_SIZE = 25
MAX_PAGE_SIZE = 1000

PARAMS = (
    query("page", {"type": "integer", "minimum": 0, "default": 0}, "Zero-based page number."),
    query(
        "page_size",
        {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE, "default": DEFAULT_PAGE_SIZE},
        "Items per page.",
    ),
)

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        name: {"type": "integer"}
        for name in ("current_page", "total_pages", "total_items", "items_per_page")
    },
}


@dataclass(frozen=True)
class Page:
    number: int
    size: int

    @property
    def offset(self) -> int:
        return self.number * self.size

    def body(self, total_items: int) -> dict[str, int]:
        """The `pagination` object; an empty collection has zero pages."""
        return {
            "current_page": self.number,
            "total_pages": -(-total_items // self.size),
            "total_items": total_items,
            "items_per_page": self.size,
        }


def page_of(request: web.Request) -> Page:
    """The requested page; 400001 names `page` or `page_size` when out of range."""
    number = int_param(request, "page", 0, lo=0)
    size = int_param(request, "page_size", DEFAULT_PAGE_SIZE, lo=1, hi=MAX_PAGE_SIZE)
    assert number is not None and size is not None  # both have defaults
    return Page(number, size)
