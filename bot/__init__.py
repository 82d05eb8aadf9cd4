"""bot room of Production Master (see ../shared/STYLE.md)."""
