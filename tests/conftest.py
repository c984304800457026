import os

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")

import torch

# Small MLPs run fastest on one thread, and two pytest-xdist workers on a 2-core machine
# would otherwise oversubscribe the cores (OpenMP spin-waits make that 5-10x slower).
torch.set_num_threads(1)
