"""The engine's compile cache stays true to its sources (engine/__init__.py): Numba checks only a
kernel's own file, so an edit to a helper in another engine file must clear the cached kernels, as
must a change of the constant the kernels take from the CPU."""
from numrnn.engine import _stale_cache_check


def test_an_edit_anywhere_in_the_engine_clears_the_cached_kernels(tmp_path, monkeypatch):
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    (tmp_path / "kernel.py").write_text("from .helper import f\n")
    (tmp_path / "helper.py").write_text("def f(): return 1\n")
    cache = tmp_path / "__pycache__"
    assert _stale_cache_check(str(tmp_path)) == [str(cache)]        # first sight: the stamp is written
    (cache / "kernel.f-1.py311.nbi").write_bytes(b"index")
    (cache / "kernel.f-1.py311.1.nbc").write_bytes(b"code")
    assert _stale_cache_check(str(tmp_path)) == []                  # same sources: the cache stays
    assert (cache / "kernel.f-1.py311.nbi").exists()
    (tmp_path / "helper.py").write_text("def f(): return 2\n")      # the kernel's own file is unchanged
    assert _stale_cache_check(str(tmp_path)) == [str(cache)]
    assert not list(cache.glob("*.nb?"))


def test_the_folder_under_numba_cache_dir_is_cleared_too(tmp_path, monkeypatch):
    import hashlib
    src, base = tmp_path / "engine", tmp_path / "cache"
    src.mkdir()
    (src / "kernel.py").write_text("x = 1\n")
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(base))
    user = base / ("engine_" + hashlib.sha1(str(src).encode()).hexdigest())
    assert _stale_cache_check(str(src)) == [str(src / "__pycache__"), str(user)]
    (user / "kernel.f-1.py311.nbi").write_bytes(b"index")
    (src / "kernel.py").write_text("x = 2\n")
    _stale_cache_check(str(src))
    assert not (user / "kernel.f-1.py311.nbi").exists()


def test_a_change_of_the_cpu_dependent_constant_clears_the_cached_kernels(tmp_path, monkeypatch):
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    (tmp_path / "kernel.py").write_text("x = 1\n")
    cache = tmp_path / "__pycache__"
    assert _stale_cache_check(str(tmp_path), "SMALL_MNK=1000000") == [str(cache)]
    (cache / "kernel.f-1.py311.nbi").write_bytes(b"index")
    assert _stale_cache_check(str(tmp_path), "SMALL_MNK=1000000") == []
    assert _stale_cache_check(str(tmp_path), "SMALL_MNK=0") == [str(cache)]    # same sources, other CPU
    assert not (cache / "kernel.f-1.py311.nbi").exists()
