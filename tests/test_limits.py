"""What a client sends is bounded where it reaches a log line or an error reply (issue 13, item 5)."""

from __future__ import annotations

import os

import pytest

from gym_remote import BadRequestError, RemoteEnv, ServerError


def test_a_huge_hello_does_not_come_back_huge_nor_fill_the_log(serve):
    server = serve("CartPole-v1")
    size_before = os.path.getsize(server.log_path)
    huge = "x" * 2**20
    for task, kwargs, error in [
        ("Ant-v5", {"frame_skp": huge}, BadRequestError),  # quoted by the build error
        ("CartPole-v1", {huge[:5000]: 1}, BadRequestError),  # a huge keyword name
        ("tests/Raising-v0", {}, None),
    ]:
        if error is None:
            with RemoteEnv(server.local_host, server.local_port, task=task) as env:
                env.reset(seed=0)
                with pytest.raises(ServerError) as info:
                    env.step(2)  # the env raises; its message is short, the reply stays small
                assert len(str(info.value)) < 30_000
            continue
        with pytest.raises(error) as info:
            RemoteEnv(server.local_host, server.local_port, task=task, task_kwargs=kwargs)
        assert len(str(info.value)) < 30_000, len(str(info.value))
    assert os.path.getsize(server.log_path) - size_before < 50_000
