"""One-line messages for users (monai_attn.errors)."""

from __future__ import annotations

import errno

from monai_attn.errors import InputError, brief_reason, one_line_error


def test_input_error_names_the_file():
    assert str(InputError("file is empty (0 bytes)", path="scans/a.nii.gz")) == "scans/a.nii.gz: file is empty (0 bytes)"
    assert str(InputError("--overlap must be in [0, 1)")) == "--overlap must be in [0, 1)"


def test_one_line_error():
    assert one_line_error(InputError("two\nlines", path="x.nii")) == "x.nii: two lines"
    assert one_line_error(OSError(errno.ENOSPC, "No space left on device", "out/seg.nii.gz")) == (
        "out/seg.nii.gz: No space left on device")
    assert one_line_error(FileNotFoundError("scan.nii: no such file or folder")) == "scan.nii: no such file or folder"
    assert one_line_error(KeyError("roi")) == "KeyError: 'roi'"
    assert one_line_error(MemoryError()).startswith("out of memory")


def test_brief_reason_drops_source_paths_and_cuts_at_a_word():
    itk = RuntimeError(
        "Exception thrown in SimpleITK ImageFileReader_Execute: /work/ITK/Modules/IO/ImageBase/src/itkImageIOBase.cxx:"
        "1234:\nITK ERROR: Could not create IO object for reading file x.nrrd"
    )
    assert brief_reason(itk) == (
        "Exception thrown in SimpleITK ImageFileReader_Execute: ITK ERROR: Could not create IO object for reading "
        "file x.nrrd")
    long = brief_reason(ValueError("abcdefghi " * 40))
    assert long.endswith("abcdefghi ...") and len(long) <= 204
    assert brief_reason(ValueError()) == "ValueError"
