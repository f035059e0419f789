"""The thread grant of a pool worker: one while tasks wait, the cores shared out after."""

from fkdverify import threads
from fkdverify.threads import granted


def test_one_thread_each_while_tasks_wait():
    assert granted(8, 2, 1) == 1
    assert granted(2, 2, 5) == 1


def test_idle_cores_shared_among_the_busy():
    assert granted(8, 2, 0) == 4
    assert granted(2, 1, 0) == 2
    assert granted(2, 3, 0) == 1  # more workers than cores: never below one
    assert granted(4, 0, 0) == 1


def test_outside_a_pool_the_threads_stay():
    import torch

    before = torch.get_num_threads()
    threads.take_granted()
    assert torch.get_num_threads() == before
