"""Reloading: the file is replaced by rename while threads verify."""

import threading
import time

import pytest

from mcp_key_verifier import Verifier, VerifierError

from conftest import make_key


def wait_for(predicate, timeout=3.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_reload_by_rename_while_threads_verify(writer):
    stay_id, stay = make_key()
    gone_id, gone = make_key()
    new_id, new = make_key()
    writer.write([writer.entry(stay_id, stay, permissions=["info"]),
                  writer.entry(gone_id, gone)], revision=1)
    v = Verifier.from_file(writer.path)

    failures = []
    counts = [0]
    stop = threading.Event()

    def hammer():
        while not stop.is_set():
            verdict = v.verify(stay, ["info"])
            counts[0] += 1
            if not verdict.valid or verdict.key_id != stay_id:
                failures.append(verdict.code)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        # Many replacements; the key present in every version must never fail.
        for revision in range(2, 12):
            entries = [writer.entry(stay_id, stay, permissions=["info"]),
                       writer.entry(gone_id, gone, status="revoked")]
            if revision % 2:
                entries.append(writer.entry(new_id, new))
            writer.write(entries, revision=revision)
            assert wait_for(lambda: v.revision == revision), "revision %d not loaded" % revision
        assert v.verify(gone).code == "REVOKED"
        assert v.verify(new).code == "VALID"  # revision 11 has it
    finally:
        stop.set()
        for t in threads:
            t.join(5)
    assert failures == []
    assert counts[0] > 100


def test_older_revision_is_kept_out(writer):
    key_id, key = make_key()
    writer.write([writer.entry(key_id, key, status="revoked")], revision=7)
    errors = []
    v = Verifier.from_file(writer.path, on_reload_error=errors.append)
    # A stale writer puts back a file where the key is still active: not used.
    writer.write([writer.entry(key_id, key)], revision=6)
    assert wait_for(lambda: (v.verify(key), errors)[1]), "the older file was not reported"
    assert "older" in str(errors[0]) and "revision 6" in str(errors[0])
    assert v.verify(key).code == "REVOKED"
    assert v.revision == 7
    # The same revision written again is accepted.
    writer.write([writer.entry(key_id, key, status="revoked", name="again")], revision=7)
    assert wait_for(lambda: v.verify(key).name == "again")
    # And a newer one replaces it.
    writer.write([writer.entry(key_id, key)], revision=8)
    assert wait_for(lambda: v.verify(key).code == "VALID")


def test_broken_file_is_kept_out_and_reported_once(writer):
    key_id, key = make_key()
    writer.write([writer.entry(key_id, key)], revision=3)
    errors = []
    v = Verifier.from_file(writer.path, on_reload_error=errors.append)
    writer.write(None, revision=None, raw=b'{"format": "mcp-key-verifier", "vers')
    assert wait_for(lambda: (v.verify(key), errors)[1])
    for _ in range(30):  # more checks of the same broken file
        v.verify(key)
        time.sleep(0.02)
    assert len(errors) == 1
    assert isinstance(errors[0], VerifierError) and "keeping revision 3" in str(errors[0])
    assert v.verify(key).valid
    # A removed file: still the last good state.
    import os
    os.unlink(writer.path)
    assert wait_for(lambda: (v.verify(key), len(errors) == 2)[1])
    assert v.verify(key).valid
    # Fixed: picked up.
    writer.write([writer.entry(key_id, key, status="revoked")], revision=4)
    assert wait_for(lambda: v.verify(key).code == "REVOKED")


def test_reload_errors_go_to_logging_by_default(writer, caplog):
    key_id, key = make_key()
    writer.write([writer.entry(key_id, key)], revision=3)
    v = Verifier.from_file(writer.path)
    writer.write(None, revision=None, raw=b"not json")
    with caplog.at_level("WARNING", logger="mcp_key_verifier"):
        assert wait_for(lambda: (v.verify(key), caplog.records)[1])
    assert "not JSON" in caplog.records[0].getMessage()
    assert key not in caplog.text


def test_a_file_is_not_statted_more_than_every_250ms(writer, monkeypatch):
    key_id, key = make_key()
    writer.write([writer.entry(key_id, key)], revision=1)
    v = Verifier.from_file(writer.path)
    import mcp_key_verifier._core as core
    calls = []
    real_stat = core.os.stat
    monkeypatch.setattr(core.os, "stat", lambda p, *a, **k: (calls.append(p), real_stat(p))[1])
    start = time.monotonic()
    n = 0
    while time.monotonic() - start < 0.6:
        v.verify(key)
        n += 1
    assert n > 1000
    assert 1 <= len(calls) <= 3


def test_missing_file_fails_clearly(tmp_path):
    with pytest.raises(VerifierError) as err:
        Verifier.from_file(tmp_path / "nope.json")
    assert "cannot read" in str(err.value)


def test_verify_is_asyncio_safe(writer):
    import asyncio
    key_id, key = make_key()
    writer.write([writer.entry(key_id, key)], revision=1)
    v = Verifier.from_file(writer.path)

    async def many():
        async def one():
            for _ in range(200):
                assert v.verify(key).valid
                await asyncio.sleep(0)
        await asyncio.gather(*(one() for _ in range(20)))

    asyncio.run(many())


def test_a_file_deeper_than_the_stack_is_kept_out_and_reported(writer):
    """Review of this turn: `"[" * 200000` raised RecursionError out of verify()."""
    key_id, key = make_key()
    writer.write([writer.entry(key_id, key)], revision=3)
    errors = []
    v = Verifier.from_file(writer.path, on_reload_error=errors.append)
    writer.write(None, revision=None, raw=b"[" * 200000)
    assert wait_for(lambda: (v.verify(key), errors)[1])
    assert isinstance(errors[0], VerifierError)
    assert v.verify(key).valid
