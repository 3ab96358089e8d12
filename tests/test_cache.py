"""The activation cache never hands back vectors it cannot vouch for: bad shards are set aside and recomputed."""

from __future__ import annotations

import json
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import make_examples
from safetensors import safe_open
from safetensors.numpy import save_file

from savs import extract
from savs.cache import ActivationCache, CacheMissError, CacheWarning, cached_texts, checksum
from savs.extract import extract_heads

pytestmark = pytest.mark.usefixtures("one_thread")


def shards(store: ActivationCache) -> list[Path]:
    return sorted(store.dir.glob("[!.]*.safetensors"))


def data_offset(path: Path) -> int:
    """Where a safetensors file's tensor bytes start: an 8-byte little-endian header size, then the JSON header."""
    (n,) = struct.unpack("<Q", path.read_bytes()[:8])
    return 8 + n


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-100])


def empty(path: Path) -> None:
    path.write_bytes(b"")


def not_safetensors(path: Path) -> None:
    path.write_text("<html>a proxy's error page</html>")


def flip_bytes(path: Path) -> None:
    data = bytearray(path.read_bytes())
    start = data_offset(path) + 64
    data[start : start + 4] = bytes(b ^ 0xFF for b in data[start : start + 4])
    path.write_bytes(bytes(data))


def write_nan(path: Path) -> None:
    """A NaN in a stored array whose checksum matches (as a writer without the finiteness guard would leave it)."""
    with safe_open(path, framework="numpy") as f:
        arrays, metadata = {k: f.get_tensor(k) for k in f.keys()}, f.metadata()
    key = next(iter(arrays))
    arrays[key].flat[3] = np.nan
    metadata[key] = checksum(arrays[key])
    save_file(arrays, str(path), metadata=metadata)


def count_batches(monkeypatch) -> list[int]:
    """The number of examples of every batch that runs through the model from now on."""
    sizes: list[int] = []
    real_run = extract._run_batch
    monkeypatch.setattr(extract, "_run_batch", lambda *a: sizes.append(len(a[-1])) or real_run(*a))
    return sizes


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (truncate, "cannot be read"),
        (empty, "cannot be read"),
        (not_safetensors, "cannot be read"),
        (flip_bytes, "fails its checksum"),
        (write_nan, "holds NaN or inf"),
    ],
)
def test_a_damaged_shard_is_set_aside_and_recomputed(damage, reason, tiny_adapter, tmp_path, monkeypatch):
    adapter = tiny_adapter("llama")
    examples = make_examples(6, with_images=False)
    expected = extract_heads(adapter, examples, batch_size=2, progress=False)
    extract_heads(adapter, examples, batch_size=2, cache_dir=tmp_path, progress=False)
    store = ActivationCache(tmp_path, adapter.identity.namespace)
    victim = shards(store)[1]
    damage(victim)
    damaged = victim.read_bytes()

    sizes = count_batches(monkeypatch)
    with pytest.warns(CacheWarning, match=f"{victim.name} .*{reason}"):
        got = extract_heads(adapter, examples, batch_size=2, cache_dir=tmp_path, progress=False)
    np.testing.assert_array_equal(got, expected)
    assert sizes == [2], "only the damaged shard's examples run again"
    (aside,) = store.dir.glob(f".corrupt-{victim.name}-*")
    assert aside.read_bytes() == damaged, "the damaged shard is kept for inspection"
    assert victim.read_bytes() != damaged, "its examples were written afresh"

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the rewritten cache is clean: no warning, no pass
        np.testing.assert_array_equal(extract_heads(adapter, examples, cache_dir=tmp_path, progress=False), expected)
    assert sizes == [2]


def test_shards_without_checksums_are_recomputed_with_one_warning(tiny_adapter, tmp_path, monkeypatch):
    adapter = tiny_adapter("llama")
    examples = make_examples(6, with_images=False)
    expected = extract_heads(adapter, examples, batch_size=2, progress=False)
    extract_heads(adapter, examples, batch_size=2, cache_dir=tmp_path, progress=False)
    store = ActivationCache(tmp_path, adapter.identity.namespace)
    old = shards(store)
    for shard in old:  # as an earlier savs wrote them: the same arrays, no metadata
        with safe_open(shard, framework="numpy") as f:
            arrays = {k: f.get_tensor(k) for k in f.keys()}
        save_file(arrays, str(shard))

    sizes = count_batches(monkeypatch)
    with pytest.warns(CacheWarning) as record:
        got = extract_heads(adapter, examples, batch_size=2, cache_dir=tmp_path, progress=False)
    assert len(record) == 1 and "without checksums" in str(record[0].message)
    np.testing.assert_array_equal(got, expected)
    assert sum(sizes) == 6
    assert len(list(store.dir.glob(".unverified-*"))) == len(old)
    for shard in shards(store):
        with safe_open(shard, framework="numpy") as f:
            assert f.metadata(), f"{shard.name} was rewritten without checksums"


def test_stored_checksums_are_those_of_the_arrays_written(tmp_path):
    """Independent of ``checksum``: sha256 of dtype, shape and bytes, recomputed here from the file's own header."""
    import hashlib

    store = ActivationCache(tmp_path, "ns")
    a = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    store.put({"k": a})
    (shard,) = shards(store)
    header = json.loads(shard.read_bytes()[8 : data_offset(shard)])
    expected = hashlib.sha256(b"<f4(2, 3, 4)|" + a.tobytes()).hexdigest()
    assert header["__metadata__"]["k"] == expected
    np.testing.assert_array_equal(ActivationCache(tmp_path, "ns").get(["k"])[0], a)


def test_get_of_a_missing_key_and_put_of_nan_are_refused(tmp_path):
    store = ActivationCache(tmp_path, "ns")
    store.put({"a": np.ones(3, dtype=np.float32)})
    with pytest.raises(CacheMissError, match="1 of the keys"):
        store.get(["a", "b"])
    with pytest.raises(ValueError, match="NaN or inf"):
        store.put({"c": np.array([1.0, np.inf], dtype=np.float32)})
    assert "c" not in ActivationCache(tmp_path, "ns")


def test_a_shard_removed_by_another_process_reads_as_missing(tmp_path):
    store = ActivationCache(tmp_path, "ns")
    store.put({"a": np.ones(3, dtype=np.float32)})
    (shard,) = shards(store)
    shard.rename(shard.with_name(".corrupt-elsewhere"))  # another process set it aside after we listed it
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert store.read(["a"]) == {}
    assert "a" not in store


def no_forward(adapter, monkeypatch) -> None:
    monkeypatch.setattr(adapter, "forward", lambda *a, **k: pytest.fail("a forward pass ran in cache-only mode"))


def test_cache_only_mode_runs_no_model_and_names_what_is_missing(tiny_adapter, tmp_path, monkeypatch):
    adapter = tiny_adapter("llama")
    examples = make_examples(6, with_images=False)
    expected = extract_heads(adapter, examples[:2], progress=False)
    extract_heads(adapter, examples[:2], cache_dir=tmp_path, progress=False)

    no_forward(adapter, monkeypatch)
    monkeypatch.setenv("SAVS_CACHE_ONLY", "1")
    with pytest.raises(CacheMissError) as error:
        extract_heads(adapter, examples, cache_dir=tmp_path, progress=False)
    message = str(error.value)
    assert isinstance(error.value, LookupError)
    assert message.startswith("4 examples lack their heads vectors")
    assert adapter.identity.namespace in message
    assert "t/2, t/3, t/4, ..." in message and "t/5" not in message and "t/1" not in message
    assert "savs.distributed" in message and "SAVS_CACHE_ONLY" in message
    assert len(ActivationCache(tmp_path, adapter.identity.namespace)) == 2, "nothing was computed"

    served = extract_heads(adapter, examples[:2], cache_dir=tmp_path, progress=False)
    np.testing.assert_array_equal(served, expected)


def test_cache_only_keyword_and_its_precedence_over_the_environment(tiny_adapter, tmp_path, monkeypatch):
    adapter = tiny_adapter("llama")
    examples = make_examples(3, with_images=False)
    expected = extract_heads(adapter, examples, progress=False)
    with pytest.raises(ValueError, match="cache_only=True needs a cache_dir"):
        extract_heads(adapter, examples, cache_only=True)
    monkeypatch.setenv("SAVS_CACHE_ONLY", "1")
    filled = extract_heads(adapter, examples, cache_dir=tmp_path, cache_only=False, progress=False)  # keyword wins
    np.testing.assert_array_equal(filled, expected)
    monkeypatch.delenv("SAVS_CACHE_ONLY")
    no_forward(adapter, monkeypatch)
    np.testing.assert_array_equal(extract_heads(adapter, examples, cache_dir=tmp_path, cache_only=True), expected)
    with pytest.raises(CacheMissError, match="1 examples lack their heads"):
        extract_heads(adapter, make_examples(4, with_images=False), cache_dir=tmp_path, cache_only=True)


# ----- texts (generated answers) ---------------------------------------------------------------------
TEXTS = {"k0": "", "k1": "Yes.", "k2": "naïve – ✓\nsecond line", "k3": "a much longer answer " * 8}


def maker(keys: list[str], made: list[str], fail_after: int | None = None):
    """A ``cached_texts`` generator of the ``TEXTS`` of ``keys``, two a batch, recording each key it makes in ``made``
    and "closed" when it is closed; it raises after ``fail_after`` batches (a killed run)."""

    def generate(todo: list[int]):
        try:
            for start in range(0, len(todo), 2):
                if start // 2 == fail_after:
                    raise KeyboardInterrupt
                chunk = [keys[i] for i in todo[start : start + 2]]
                made.extend(chunk)
                yield list(range(start, start + len(chunk))), [TEXTS[k] for k in chunk]
        finally:
            made.append("closed")

    return generate


def test_cached_texts_round_trip_and_make_only_what_is_missing(tmp_path):
    keys = ["k1", "k0", "k2", "k1"]
    made: list[str] = []
    store = ActivationCache(tmp_path, "ns")
    first = cached_texts(store, keys, maker(keys, made))
    assert first == [TEXTS[k] for k in keys]
    assert made == ["k1", "k0", "k2", "closed"], "a repeated key is made once"
    assert len(shards(store)) == 2, "one shard per batch"

    made.clear()
    keys = ["k3", "k2", "k0"]
    again = cached_texts(ActivationCache(tmp_path, "ns"), keys, maker(keys, made))
    assert again == [TEXTS[k] for k in keys], "the empty text and non-ASCII ones come back exactly"
    assert made == ["k3", "closed"]

    made.clear()
    assert cached_texts(ActivationCache(tmp_path, "ns"), keys, maker(keys, made)) == again
    assert made == [], "nothing to make: the generator is never started"


def test_cached_texts_keep_the_batches_a_killed_run_finished(tmp_path):
    keys = list(TEXTS)
    made: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        cached_texts(ActivationCache(tmp_path, "ns"), keys, maker(keys, made, fail_after=1))
    assert made == ["k0", "k1", "closed"]
    made.clear()
    assert cached_texts(ActivationCache(tmp_path, "ns"), keys, maker(keys, made)) == list(TEXTS.values())
    assert made == ["k2", "k3", "closed"]


def test_cached_texts_close_the_generator_when_storing_fails(tmp_path, monkeypatch):
    """Closed at once, not whenever the traceback that holds it goes: a LoRA adapter inside it is removed then."""
    store = ActivationCache(tmp_path, "ns")

    def disk_full(arrays):
        raise OSError("No space left on device")

    monkeypatch.setattr(store, "put", disk_full)
    made: list[str] = []
    try:
        cached_texts(store, list(TEXTS), maker(list(TEXTS), made))
    except OSError:  # the traceback, which holds the generator, is still alive here
        assert made == ["k0", "k1", "closed"]
    else:
        pytest.fail("the failing store raised nothing")


def test_cached_texts_in_cache_only_mode_make_nothing(tmp_path):
    made: list[str] = []
    cached_texts(ActivationCache(tmp_path, "ns"), ["k1"], maker(["k1"], made))
    made.clear()
    keys = ["k1", "k2", "k3"]
    with pytest.raises(CacheMissError, match=r"2 of 3 LoRA answers are not in the cache .*SAVS_CACHE_ONLY"):
        cached_texts(ActivationCache(tmp_path, "ns"), keys, maker(keys, made), cache_only=True, what="LoRA answers")
    assert made == []
    assert cached_texts(ActivationCache(tmp_path, "ns"), ["k1"], maker(["k1"], made), cache_only=True) == ["Yes."]


@pytest.mark.parametrize(("damage", "reason"), [(truncate, "cannot be read"), (flip_bytes, "fails its checksum")])
def test_a_damaged_shard_of_texts_is_set_aside_and_made_again(damage, reason, tmp_path):
    keys = list(TEXTS)
    made: list[str] = []
    store = ActivationCache(tmp_path, "ns")
    cached_texts(store, keys, maker(keys, made))
    (victim,) = [s for s in shards(store) if "k3" in safe_open(s, framework="numpy").keys()]
    damage(victim)
    made.clear()
    with pytest.warns(CacheWarning, match=f"{victim.name} .*{reason}"):
        again = cached_texts(ActivationCache(tmp_path, "ns"), keys, maker(keys, made))
    assert again == list(TEXTS.values())
    assert made == ["k2", "k3", "closed"], "only the damaged shard's texts are made again"
    assert len(list(store.dir.glob(f".corrupt-{victim.name}-*"))) == 1


def test_build_once_builds_once_keeps_a_racing_winner_and_leaves_no_half_folder(tmp_path):
    from savs.cache import build_once

    out, calls = tmp_path / "models" / "m", []

    def build(tmp):
        calls.append(tmp)
        (tmp / "config.json").write_text("{}")

    assert build_once(out, build) == out and (out / "config.json").is_file()
    assert build_once(out, build) == out and len(calls) == 1  # built: not again

    raced = tmp_path / "models" / "raced"

    def lose_the_race(tmp):
        (tmp / "config.json").write_text('{"mine": 1}')
        raced.mkdir()
        (raced / "config.json").write_text('{"winner": 1}')
        (raced / "weights").write_text("x")  # non-empty: the rename fails

    assert build_once(raced, lose_the_race) == raced and "winner" in (raced / "config.json").read_text()

    def fail(tmp):
        (tmp / "config.json").write_text("{}")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        build_once(tmp_path / "models" / "broken", fail)
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["m", "raced"]  # no temporary folder left
