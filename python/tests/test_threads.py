"""The GIL is released while generating, calls from two threads give what they give alone, calls in the
two arithmetic modes do not disturb each other, and Ctrl-C stops a generation within one step."""

import os
import signal
import threading
import time

import numpy as np
import pytest

LONG = dict(prompt="What is 4821 + 739?", gen_length=2048, block_length=32, num_inference_steps=32,
            threshold=2.0, editing_threshold=None, eos_early_stop=False)  # one commit per step: many forwards
ARGS = dict(gen_length=128, block_length=32, num_inference_steps=32, threshold=0.7, editing_threshold=0.5)


def test_gil_is_released(demo):
    done = threading.Event()
    result = {}

    def run():
        result["out"] = demo(**dict(LONG, gen_length=256))
        done.set()

    t = threading.Thread(target=run)
    t.start()
    ticks = 0
    while not done.is_set():  # pure Python work: it only progresses while the generation runs without the GIL
        ticks += 1
        time.sleep(0)
    t.join()
    assert result["out"].stats["forwards"] >= 100
    assert ticks > 100


def test_two_threads_give_what_each_gives_alone(demo):
    prompts = ["What is 52 * 17?", "Sort these numbers: 42, 7, 913, 5"]
    alone = [demo(prompt=p, **ARGS).sequences for p in prompts]
    for exact in (False, True):  # both in one mode, then (below) one in each mode
        got = [None, None]

        def run(i, ex):
            got[i] = demo(prompt=prompts[i], exact=ex, **ARGS).sequences

        ref = alone if not exact else [demo(prompt=p, exact=True, **ARGS).sequences for p in prompts]
        ts = [threading.Thread(target=run, args=(i, exact)) for i in range(2)]
        [t.start() for t in ts]
        [t.join() for t in ts]
        assert [g.tolist() for g in got] == [r.tolist() for r in ref]
    exact_first = demo(prompt=prompts[1], exact=True, **ARGS).sequences
    got = [None, None]
    ts = [threading.Thread(target=lambda: got.__setitem__(0, demo(prompt=prompts[0], exact=False, **ARGS).sequences)),
          threading.Thread(target=lambda: got.__setitem__(1, demo(prompt=prompts[1], exact=True, **ARGS).sequences))]
    [t.start() for t in ts]
    [t.join() for t in ts]
    assert got[0].tolist() == alone[0].tolist() and got[1].tolist() == exact_first.tolist()


def test_ctrl_c_interrupts_within_one_step(demo):
    steps = []
    eleven = threading.Event()

    def cb(p, step, timestep, k):
        steps.append(time.monotonic())
        if len(steps) == 11:
            eleven.set()
        return {}

    sent = []

    def fire():  # a moment after the 11th step (not after a fixed time: a loaded machine runs fewer steps)
        eleven.wait(120)
        time.sleep(0.05)
        sent.append(time.monotonic())
        os.kill(os.getpid(), signal.SIGINT)

    timer = threading.Thread(target=fire)
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        demo(callback_on_step_end=cb, callback_on_step_end_tensor_inputs=[], **LONG)
    t1 = time.monotonic()
    timer.join()
    assert len(steps) > 10 and steps[-1] < t1
    assert sum(1 for s in steps if s > sent[0]) <= 1  # at most the step that was running when it came
    assert t1 - sent[0] < 1.0
    # Without a callback too, and the pipeline still works afterwards.
    timer = threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        demo(**LONG)
    assert time.monotonic() - t0 < 1.5
    timer.join()
    out = demo(prompt="What is 4821 + 739?", **ARGS)
    assert out.sequences.shape == (1, 128)
