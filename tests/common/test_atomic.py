"""common.atomic: files and folders appear whole or not at all; a folder swap keeps the old one until the new is in."""

import os

import pytest

from common.atomic import atomic_folder, atomic_write_text, swap_in

pytestmark = pytest.mark.fast


def test_atomic_write_text_replaces_whole_and_leaves_no_temp(tmp_path):
    path = tmp_path / "a" / "x.txt"
    atomic_write_text(path, "one")
    atomic_write_text(path, "two")
    assert path.read_text() == "two" and os.listdir(path.parent) == ["x.txt"]


def test_atomic_folder_replace_keep_and_failure(tmp_path):
    dest = tmp_path / "cache"
    with atomic_folder(dest, replace=True) as tmp:
        (tmp / "f").write_text("1")
    with atomic_folder(dest, replace=False) as tmp:      # another process finished first: its folder stays
        (tmp / "f").write_text("2")
    assert (dest / "f").read_text() == "1"
    with atomic_folder(dest, replace=True) as tmp:
        (tmp / "f").write_text("3")
    assert (dest / "f").read_text() == "3"
    with pytest.raises(RuntimeError), atomic_folder(dest, replace=True) as tmp:
        (tmp / "f").write_text("half")
        raise RuntimeError("crash mid-write")
    assert (dest / "f").read_text() == "3" and sorted(os.listdir(tmp_path)) == ["cache"]   # no temp, no .old


def test_swap_in_moves_the_old_folder_aside_first(tmp_path, monkeypatch):
    dest, new = tmp_path / "last", tmp_path / "new"
    dest.mkdir()
    (dest / "v").write_text("old")
    new.mkdir()
    (new / "v").write_text("new")
    real, seen = os.replace, []

    def spy(src, dst):   # at the second replace the old folder must already sit at .last.old
        seen.append(((tmp_path / ".last.old" / "v").exists(), str(dst)))
        real(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    swap_in(new, dest)
    assert (dest / "v").read_text() == "new" and sorted(os.listdir(tmp_path)) == ["last"]
    assert seen == [(False, str(tmp_path / ".last.old")), (True, str(dest))]
