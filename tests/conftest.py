"""Settings for the whole test suite: one torch thread per process unless ``OMP_NUM_THREADS`` says otherwise.

The tests train and score small models, which run no faster on two threads; on a busy machine,
two OpenMP threads per process stall at every parallel region while other jobs hold the cores
(the full-covariance free-bits test took 53 s with two threads and 1.4 s with one, two training
jobs running on the 2 cores). Subprocesses (the command line, torchrun) inherit the setting.
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402  (after the environment is set)

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
