"""A hub id with no network: a quick probe, then the local hub cache alone, not tens of seconds of retries."""

from __future__ import annotations

import shutil
import socket
import time

import pytest
from huggingface_hub import constants as hf_constants

from savs.models import load_model, registry

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def fresh_probe():
    """The real probe with its memo cleared before and after (a patched ``hub_reachable`` is not this one)."""
    probe = registry.hub_reachable
    probe.cache_clear()
    yield probe
    probe.cache_clear()


@pytest.fixture
def online_mode(monkeypatch, fresh_probe):
    """The user's environment without ``HF_HUB_OFFLINE`` (conftest sets it, and the hub client read it at import).

    Yields the host names that anything tried to resolve: an attempted hub request shows up there.
    """
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    resolved: list[str] = []

    def no_dns(host, *args, **kwargs):
        resolved.append(host)
        raise socket.gaierror(socket.EAI_NONAME, "name resolution disabled in this test")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    return resolved


def test_hub_id_without_network_fails_fast_and_asks_nothing(online_mode, monkeypatch):
    monkeypatch.setattr(registry, "hub_reachable", lambda: False)
    start = time.perf_counter()
    with pytest.raises(ValueError, match="cannot load model 'qwen2-vl-7b'.*only the local hub cache.*Registry names"):
        load_model("qwen2-vl-7b")
    assert time.perf_counter() - start < 5
    assert online_mode == []  # no request was attempted
    assert hf_constants.HF_HUB_OFFLINE is False  # offline mode was only for the load


def test_hub_id_in_the_local_cache_loads_without_network(online_mode, monkeypatch, tiny_dir, tmp_path):
    commit = "c" * 40
    repo = tmp_path / "models--savs-test--tiny-llava"
    shutil.copytree(tiny_dir("llava"), repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(registry, "hub_reachable", lambda: False)
    adapter = load_model("savs-test/tiny-llava", device="cpu")
    assert adapter.identity.source == f"hub:savs-test/tiny-llava@{commit}"
    assert online_mode == []


def test_offline_mode_set_by_the_user_needs_no_probe(monkeypatch):
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(registry, "hub_reachable", lambda: pytest.fail("probed although HF_HUB_OFFLINE is set"))
    with pytest.raises(ValueError, match="Registry names"):
        load_model("Qwen/Qwen2-VL-7B-Instruct")


def test_local_directory_needs_no_probe(online_mode, monkeypatch, tiny_dir):
    monkeypatch.setattr(registry, "hub_reachable", lambda: pytest.fail("probed for a local directory"))
    assert load_model(tiny_dir("llama"), device="cpu").n_layers == 2


def test_probe_sees_a_listening_endpoint_and_a_closed_one(fresh_probe, monkeypatch):
    monkeypatch.delenv("HTTPS_PROXY", raising=False)
    monkeypatch.delenv("https_proxy", raising=False)
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        monkeypatch.setattr(hf_constants, "ENDPOINT", f"https://127.0.0.1:{port}")
        assert fresh_probe() is True
    fresh_probe.cache_clear()
    assert fresh_probe() is False  # the same port, now closed


def test_probe_is_asked_once_per_process(fresh_probe, monkeypatch):
    calls = []
    monkeypatch.setattr(registry, "_connects", lambda *a: calls.append(a) or False)
    assert fresh_probe() is False and fresh_probe() is False
    assert len(calls) == 1


def test_probe_trusts_a_configured_proxy(fresh_probe, monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setattr(registry, "_connects", lambda *a: pytest.fail("probed past the proxy"))
    assert fresh_probe() is True


def test_hub_id_fails_fast_in_this_sandbox(monkeypatch, fresh_probe):
    """The real probe, where the hub is unreachable (skipped on a networked machine: it would download 7B)."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    if fresh_probe():
        pytest.skip("the hub is reachable from here")
    start = time.perf_counter()
    with pytest.raises(ValueError, match="Registry names"):
        load_model("Qwen/Qwen2-VL-7B-Instruct")
    assert time.perf_counter() - start < 5
