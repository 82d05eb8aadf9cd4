"""`pm serve` freezes the objects of the built app before it serves."""

from __future__ import annotations


def test_a_serving_process_freezes_what_it_built_before_serving():
    """Full GC collections must not walk the ~10^6 objects of a built app (bench/api_load.py: 50-190 ms
    pauses); `pm serve` freezes them before uvicorn runs."""
    import gc
    import inspect

    from bot.http import cli
    from bot.http.server import freeze_startup_objects

    try:
        assert freeze_startup_objects() > 1000 and gc.get_freeze_count() > 1000
    finally:
        gc.unfreeze()
    source = inspect.getsource(cli.run_serve)
    assert source.index("freeze_startup_objects()") < source.index("uvicorn.run(")
