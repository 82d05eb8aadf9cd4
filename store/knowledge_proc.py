"""The knowledge base opened in a helper process, so a short-lived command does not wait for it.

Opening the knowledge base costs about a second and a half of CPU before its first answer (importing
chromadb, opening its client and collection, loading the 90 MB embedding model and its ONNX session);
in ``pm investigate`` that came after the world load and the evidence phases, on the one thread that
runs them. :func:`start` launches ``python -c ...knowledge_proc.serve()`` at once; the helper opens
everything while the command loads the world and runs the engine on the other core, then answers the
plan's two questions (``similar`` at the hypotheses, ``similar`` + ``upsert`` at the report) with the
same :class:`~store.knowledge.KnowledgeBase` code the command would have run itself.

The two talk over the helper's stdin and stdout: length-prefixed pickled frames (both ends are this
code in this installation, never a network peer). The helper's stray prints go to its stderr.

If the helper cannot be started, dies, or stops answering, :class:`RemoteMemory` opens the knowledge
base in this process instead, so the investigation's report is the same either way.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import signal
import struct
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

from store.errors import StoreError

log = logging.getLogger(__name__)

_HEADER = struct.Struct("<I")
#: What the helper runs: the parent's import path first, so it finds this package however the
#: parent found it (installed, PYTHONPATH, or a source checkout as the current directory).
_BOOT = ("import sys, json; sys.path[:0] = json.loads(sys.argv[1]); "
         "from store.knowledge_proc import serve; serve(sys.argv[2], sys.argv[3] or None, sys.argv[4] == '1')")


class HelperGone(Exception):
    """Internal: the helper process cannot answer (not started, exited, broken pipe)."""


def _write(stream: IO[bytes], obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def _read(stream: IO[bytes]) -> Any:
    head = stream.read(_HEADER.size)
    if len(head) < _HEADER.size:
        raise EOFError("the other end closed the pipe")
    (size,) = _HEADER.unpack(head)
    data = stream.read(size)
    if len(data) < size:
        raise EOFError("the other end closed the pipe mid-frame")
    return pickle.loads(data)  # noqa: S301 - frames come only from our own helper or parent


# -- the helper's side ----------------------------------------------------------------------------
def serve(home: str, chroma_host: str | None, debug: bool = False) -> None:
    """The helper's main loop: open the knowledge base at once, then answer requests until stdin closes.

    Each request is ``(method, args, kwargs)`` for the :class:`~store.knowledge.KnowledgeBase`
    (``"reset"`` forgets it, as :meth:`Memory.reset` does); each answer ``("ok", value)`` or
    ``("error", exc)`` with the exception the method raised (a StoreError, re-raised by the caller).
    """
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    # Ctrl-C is the parent's to handle; the helper ends when the parent closes its input (or exits)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as the CLI sets it (bot.cli._one_blas_thread)
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # prints of libraries never corrupt the frames
    inp = sys.stdin.buffer
    from store.knowledge import KnowledgeBase, Memory, make_client, shared_embedder

    memory = Memory(lambda: KnowledgeBase(make_client(home=Path(home), chroma_host=chroma_host),
                                          shared_embedder()))
    try:  # open now, while the parent is busy; a failure is met again (and reported) at first use
        memory.kb().count()
    except StoreError:
        memory.reset()
    except Exception:  # noqa: BLE001 - the first real request reports it the way the parent would
        log.debug("opening the knowledge base ahead failed", exc_info=True)
        memory.reset()
    while True:
        try:
            method, args, kwargs = _read(inp)
        except EOFError:
            break
        try:
            if method == "reset":
                memory.reset()
                value: Any = None
            else:
                value = getattr(memory.kb(), method)(*args, **kwargs)
            answer: tuple[str, Any] = ("ok", value)
        except Exception as exc:  # noqa: BLE001 - handed back to the caller, raised there
            answer = ("error", exc)
        try:
            _write(out, answer)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            _write(out, ("error", StoreError(f"knowledge base helper: cannot send the answer ({exc})")))
    out.flush()
    os._exit(0)  # nothing left to say; skip tearing down Chroma and the model object by object


# -- the caller's side ----------------------------------------------------------------------------
class _Helper:
    """The running helper process and one request at a time over its pipes."""

    def __init__(self, home: Path, chroma_host: str | None, *, debug: bool) -> None:
        cmd = [sys.executable, "-c", _BOOT, json.dumps([p for p in sys.path if p]), str(home),
               chroma_host or "", "1" if debug else "0"]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None,
                                     close_fds=True)
        self._lock = threading.Lock()
        self.broken = False
        self.used = False

    def request(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Ask the helper; returns its value, raises the exception it raised.

        Raises:
            HelperGone: the helper did not answer (the caller falls back to this process).
        """
        with self._lock:
            if self.broken:
                raise HelperGone("the knowledge base helper stopped earlier")
            stdin, stdout = self.proc.stdin, self.proc.stdout
            if stdin is None or stdout is None:
                raise HelperGone("the knowledge base helper has no pipes")
            self.used = True
            try:
                _write(stdin, (method, args, kwargs))
                status, value = _read(stdout)
            except Exception as exc:  # noqa: BLE001 - a pipe, a frame or an error type that would not unpickle
                self.broken = True
                self._stop()
                raise HelperGone(f"the knowledge base helper stopped ({type(exc).__name__}: {exc})") from None
        if status == "error":
            raise value
        return value

    def _stop(self) -> None:
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def close(self) -> None:
        """Stop the helper: on end of input once it was used (it may have written); at once if never
        asked anything (the command failed early, e.g. on a malformed world: no need to wait for it)."""
        with self._lock:
            self.broken = True
            if not self.used and self.proc.poll() is None:
                self.proc.terminate()
            self._stop()


class _RemoteKnowledgeBase:
    """Stands for the helper's :class:`~store.knowledge.KnowledgeBase`: each method call is a request."""

    def __init__(self, owner: RemoteMemory) -> None:
        self._owner = owner

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._owner._call(name, *args, **kwargs)

        return call


class RemoteMemory:
    """A :class:`store.knowledge.Memory` whose knowledge base lives in a helper process (module doc).

    Args:
        local: the in-process Memory to fall back on when the helper cannot answer.
        helper: the running helper, or None (then everything is local).
    """

    def __init__(self, local: Any, helper: _Helper | None) -> None:
        self._local = local
        self._helper = helper
        self._remote = _RemoteKnowledgeBase(self)

    def kb(self) -> Any:
        """The knowledge base: the helper's while it answers, else this process's (opened on first use).

        Raises:
            StoreError: the local knowledge base cannot be opened (the message says what to do).
        """
        if self._helper is not None and not self._helper.broken:
            return self._remote
        return self._local.kb()

    def reset(self) -> None:
        """Forget the opened knowledge base, in the helper and here, so the next use opens it again."""
        self._local.reset()
        if self._helper is not None and not self._helper.broken:
            try:
                self._helper.request("reset")
            except HelperGone:
                pass

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if self._helper is not None and not self._helper.broken:
            try:
                return self._helper.request(method, *args, **kwargs)
            except HelperGone as exc:
                log.warning("%s; opening the knowledge base in this process", exc)
        return getattr(self._local.kb(), method)(*args, **kwargs)

    def close(self) -> None:
        """Stop the helper (it also stops by itself when this process exits)."""
        if self._helper is not None:
            self._helper.close()


def start(settings: Any, *, debug: bool = False) -> RemoteMemory:
    """Start the helper for ``settings`` (``PM_HOME``, ``CHROMA_HOST``) and return its Memory.

    Never raises: when the helper cannot be started, the Memory opens the knowledge base in this process.
    """
    try:  # first, so the helper starts before this process imports anything more
        helper: _Helper | None = _Helper(Path(settings.home), getattr(settings, "chroma_host", None), debug=debug)
    except OSError as exc:
        log.warning("could not start the knowledge base helper (%s); opening it in this process", exc)
        helper = None
    from store.knowledge import memory_from_settings

    return RemoteMemory(memory_from_settings(settings), helper)
