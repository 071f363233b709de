"""Temporaries left by a killed writer: removed for the outputs a run planned, and nothing else."""

from __future__ import annotations

from pathlib import Path

from edgegen.runtime.files import remove_temps_of, temp_beside


def test_only_the_temporaries_of_the_given_outputs_are_removed(tmp_path: Path) -> None:
    mine = temp_beside(tmp_path / "photo1.png")  # a worker killed while writing photo1.png
    long_name = "x" * 250 + ".png"
    cut = temp_beside(tmp_path / long_name)  # its temporary's name is cut short
    other = temp_beside(tmp_path / "elsewhere.png")  # another run's output
    user = tmp_path / ".photo1.png.tmp"  # a user's file of a similar name
    user.write_text("keep")
    done = tmp_path / "photo2.png"
    done.write_bytes(b"png")
    removed = remove_temps_of([tmp_path / "photo1.png", done, tmp_path / long_name])
    assert sorted(removed) == sorted([mine, cut])
    assert not mine.exists() and not cut.exists()
    assert other.exists() and user.read_text() == "keep" and done.read_bytes() == b"png"
