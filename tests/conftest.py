"""Shared test settings: one torch thread. On a 2-core machine a second thread adds little
bandwidth but makes every timing (and the whole suite) slow whenever another process is busy."""


import torch

torch.set_num_threads(1)
