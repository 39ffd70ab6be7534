"""PySide6 reads no llamadash module's source at import (llamadash.ui.import_scan)."""

from __future__ import annotations

import textwrap

from support import run_offscreen_python

PROBE = textwrap.dedent(
    """
    import inspect, sys
    import PySide6.QtWidgets
    import shibokensupport.feature as feature

    read = []
    real = inspect.getsource
    def getsource(obj):
        read.append(getattr(obj, "__name__", "?"))
        return real(obj)
    inspect.getsource = getsource

    if sys.argv[1] == "skip":
        from llamadash.ui.import_scan import skip_source_scan
        assert skip_source_scan()
        assert skip_source_scan()  # twice: still one wrapper
    import llamadash.core.database, llamadash.ui.charts, json
    import wave  # not llamadash's: still scanned
    own = [n for n in read if n.startswith("llamadash")]
    ids = sorted({str(v) for k, v in feature.pyside_feature_dict.items() if k.startswith("llamadash.")})
    print(",".join(own) or "-", "wave" in read, ",".join(ids))
    """
)


def _probe(mode: str) -> list[str]:
    return run_offscreen_python(PROBE, mode)


def test_without_the_skip_pyside_reads_each_module_it_sees():
    own, other, ids = _probe("scan")
    assert len(own.split(",")) > 10  # what the skip saves: if PySide6 stops scanning, this test says so
    assert other == "True"
    assert ids == "-1,0"  # the core modules do not say PySide6, the ui modules do


def test_with_the_skip_no_llamadash_source_is_read_and_the_answer_is_no_feature():
    own, other, ids = _probe("skip")
    # only the modules imported before the skip could be read: its own and its packages
    assert set(own.split(",")) <= {"-", "llamadash", "llamadash.ui", "llamadash.ui.import_scan"}, own
    assert other == "True"  # other packages keep their scan
    assert ids == "0"  # select id 0: PySide6 with no feature, as llamadash uses it


def test_the_window_starts_with_the_skip(tmp_path):
    script = textwrap.dedent(
        f"""
        import os, sys
        from PySide6.QtWidgets import QApplication
        app = QApplication(sys.argv[:1])
        import llamadash.app as launcher
        gui = launcher.build_gui(["--data-dir", {str(tmp_path)!r}])
        import shibokensupport.feature as feature
        print(getattr(feature._mod_uses_pyside, "llamadash_skips", False), flush=True)
        os._exit(0)
        """
    )
    assert run_offscreen_python(script) == ["True"]
