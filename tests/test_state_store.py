"""Store.create against the races a `delete --force` (remove_orphan) and another create can
make between its mkdir and its lock: found by the parallel soak test (a create writing into a
removed directory, two creates owning one directory)."""

from __future__ import annotations

import os

import pytest

from pyruntime.container import state as st
from pyruntime.errors import RuntimeFailure


def _racing_lock(monkeypatch, race):
    """ContainerDir.lock runs race(path) once, before it opens the directory."""
    real = st.ContainerDir.lock
    done = []

    def lock(self, shared=False):
        if not done:
            done.append(True)
            race(self.path)
        return real(self, shared)
    monkeypatch.setattr(st.ContainerDir, "lock", lock)


def test_create_remade_after_orphan_removal(tmp_path, monkeypatch):
    store = st.Store(str(tmp_path))
    # a delete --force took the fresh, empty directory for an orphan and removed it
    _racing_lock(monkeypatch, lambda path: store.remove_orphan("c1"))
    d = store.create("c1")
    try:
        assert os.fstat(d._fd).st_nlink > 0
        assert os.path.samestat(os.fstat(d._fd), os.stat(tmp_path / "c1"))
        assert os.path.exists(tmp_path / "c1" / st.CLAIM)
    finally:
        d.close()


def test_directory_remade_by_another_create_is_not_ours(tmp_path, monkeypatch):
    store = st.Store(str(tmp_path))
    other = []

    def race(path):
        store.remove_orphan("c1")  # ours is removed ...
        other.append(store.create("c1"))  # ... another create makes and claims it anew,
        other[0].close()  # and is done with it (our lock waits for that)
    _racing_lock(monkeypatch, race)
    with pytest.raises(RuntimeFailure, match="container with id exists: c1"):
        store.create("c1")
    assert other


def test_second_create_of_an_id_fails(tmp_path):
    store = st.Store(str(tmp_path))
    d = store.create("c1")
    try:
        with pytest.raises(RuntimeFailure, match="container with id exists: c1"):
            store.create("c1")
    finally:
        d.close()
