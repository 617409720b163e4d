"""The numba options every compiled kernel of the synthesis uses, and the freshness of their
on-disk cache.

numba decides whether a cached kernel is fresh from its own source file alone: a kernel that
calls one from another module keeps running the callee's old machine code after that module
changes (a checkout of other code, an edit). So the kernels' cache next to the sources is
tied to all of their sources at once: when any ``kernels*.py`` or this file differs from the
code that wrote the cache, its files are removed before a kernel is loaded, and the kernels
compile afresh (20-35 s on two cores, once). A cache elsewhere (``NUMBA_CACHE_DIR``, or a
read-only install) is not checked: installing a release rewrites every source, which numba
notices.

Importing this module (the first kernel module does) also loads numba's NumPy support
without its BLAS probe's import of scipy.linalg (``load_numpy_support``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import threading
import types
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any, Literal, TypedDict


class JitOptions(TypedDict):
    """Keyword options of ``numba.njit``, typed so that ``njit(**OPTIONS)`` type-checks."""

    cache: bool
    nogil: bool
    error_model: Literal["python", "numpy"]


OPTIONS: JitOptions = {"cache": True, "nogil": True, "error_model": "numpy"}

_NO_MATCH = "No matching definition"  # numba's TypeError when no compiled signature fits
_COMPILING = threading.Lock()  # one thread at a time turns a kernel's compilation on and off


class AnyLayout:
    """A numba kernel that compiles one machine code for every memory layout of the array
    arguments at ``views`` (box views into a volume: strided, but contiguous when the box
    spans the volume's last two axes).

    numba specialises on layout: left alone it compiles a kernel once for a contiguous view and
    again for a strided one, seconds each the first time a run meets that case, in the middle
    of synthesis. Here those arguments are declared with layout "A" (any strides), compiling
    (or loading from the cache) on the first call with new dtypes, and numba passes a
    contiguous view to that code as it is.
    """

    def __init__(self, kernel: Any, views: tuple[int, ...]) -> None:
        self.kernel, self.views, self._compiled = kernel, views, False
        self.__doc__, self.__name__ = kernel.__doc__, kernel.__name__

    def __call__(self, *args: Any) -> Any:
        if self._compiled:
            try:
                return self.kernel(*args)
            except TypeError as error:
                if not str(error).startswith(_NO_MATCH):
                    raise
        elif not hasattr(self.kernel, "compile"):  # NUMBA_DISABLE_JIT: the Python function
            return self.kernel(*args)
        from numba import typeof

        types = [typeof(a) for a in args]  # type: ignore[no-untyped-call]
        for i in self.views:
            types[i] = types[i].copy(layout="A")
        with _COMPILING:
            self.kernel.disable_compile(False)
            try:
                self.kernel.compile(tuple(types))
            finally:  # later calls take the compiled code for contiguous views too
                self._compiled = bool(self.kernel.signatures)
                self.kernel.disable_compile(self._compiled)
        return self.kernel(*args)

    @property
    def signatures(self) -> list[Any]:
        """The argument types compiled so far (numba's ``signatures``)."""
        return list(self.kernel.signatures)


def on_disk(kernel: Any) -> bool:
    """Whether numba's on-disk cache holds compiled code of ``kernel`` (an ``njit`` or
    ``AnyLayout`` kernel): when not, its first call compiles it."""
    dispatcher = getattr(kernel, "kernel", kernel)
    if not hasattr(dispatcher, "stats"):  # NUMBA_DISABLE_JIT: a plain function, no compile
        return True
    function = dispatcher.py_func
    module = function.__module__.rsplit(".", 1)[-1]
    # numba's index file: <module>.<function>-<line>.py<version>.nbi, beside its code files
    pattern = f"{module}.{function.__qualname__}-*.nbi"
    return any(Path(dispatcher.stats.cache_path).glob(pattern))


def any_layout(*views: int) -> Callable[[Any], AnyLayout]:
    """Decorator over ``njit``: the arguments at positions ``views`` compile for any layout
    (``AnyLayout``)."""
    return lambda kernel: AnyLayout(kernel, views)


_HERE = Path(__file__).parent
_STAMP = "kernels.sources.sha256"  # in the cache folder: the digest of the sources it holds


def _sources_digest(folder: Path) -> str:
    """SHA-256 over the kernel modules' sources in ``folder`` (and this file's), by name."""
    digest = hashlib.sha256()
    for path in sorted([*folder.glob("kernels*.py"), *folder.glob("jit_options.py")]):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def refresh_kernel_cache(folder: Path = _HERE) -> bool:
    """Remove the kernels' numba cache files in ``folder``/__pycache__ when they were compiled
    from other sources than ``folder``'s; True if it removed any. Runs when the first kernel
    module imports this one. A cache that cannot be read or written is left to numba (which
    then compiles in memory)."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return False
    cache = folder / "__pycache__"
    digest = _sources_digest(folder)
    with suppress(OSError):
        if (cache / _STAMP).read_text() == digest:
            return False
    removed = False
    with suppress(OSError):
        for pattern in ("kernels*.nbi", "kernels*.nbc"):
            for path in cache.glob(pattern):  # numba's files of our kernel modules only
                path.unlink(missing_ok=True)
                removed = True
        cache.mkdir(exist_ok=True)
        tmp = cache / f".{_STAMP}.{os.getpid()}.tmp"
        tmp.write_text(digest)
        os.replace(tmp, cache / _STAMP)
    return removed


_BLAS_PROBE = "scipy.linalg.cython_blas"


def load_numpy_support() -> bool:
    """Import numba's NumPy support (``numba.np.arraymath``) with its BLAS probe answered by a
    stand-in module; True if it did. Runs when the first kernel module imports this one.

    numba imports that module on its first compile or cache load, and at import it checks once
    whether BLAS is there by importing ``scipy.linalg.cython_blas``: all of scipy.linalg, 0.3 s
    of a 1.2 s warm start-up here, for our kernels, which call no BLAS. The probe only needs the
    import to succeed, as it would (scipy is a dependency). The stand-in is in ``sys.modules``
    for that import alone, then removed: numba's own later import, where code calls
    ``np.dot``, and any ``import scipy.linalg`` load the real module. Nothing is done when
    numba's NumPy support or scipy.linalg is loaded already, or scipy is missing (then the
    probe's failure is numba's real answer); a numba whose import wants more of the module than
    the probe gets the real one (False).
    """
    if ("numba.np.arraymath" in sys.modules or "scipy.linalg" in sys.modules
            or importlib.util.find_spec("scipy") is None):
        return False
    stand_in = types.ModuleType(_BLAS_PROBE)
    sys.modules[_BLAS_PROBE] = stand_in
    try:
        try:
            import numba.np.arraymath  # noqa: F401
        finally:
            if sys.modules.get(_BLAS_PROBE) is stand_in:
                del sys.modules[_BLAS_PROBE]
    except (ImportError, AttributeError):  # a numba that reads more than the probe does
        import numba.np.arraymath  # noqa: F401  (now with the real module)
        return False
    return True


refresh_kernel_cache()
load_numpy_support()
