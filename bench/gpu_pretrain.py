"""Pretraining throughput on a GPU: images/s of `modan_pretrain` at 224 px, bf16, channels_last, batch 256, and peak GPU memory.

On CUDA: python bench/gpu_pretrain.py            (defaults: 224 px, bs 256, 1024 synthetic images, 2 epochs; < 5 min)
On CPU it runs with tiny settings so the script itself can be checked:  python bench/gpu_pretrain.py --size 32 --bs 8 --n 32
"""
import argparse, sys, tempfile, time
from pathlib import Path
import torch
from fastai.callback.core import Callback
sys.path.insert(0, str(Path(__file__).parents[1]/'tests'))
from _pretrain_helpers import tiny_table
from modan_nb.learner import modan_pretrain

class Timer(Callback):
    order = 100
    def before_fit(self): self.n_img, self.t0 = 0, None
    def after_batch(self):
        if torch.cuda.is_available(): torch.cuda.synchronize()
        if self.t0 is None: self.t0 = time.perf_counter(); return # first step (cudnn autotune) not timed
        self.n_img += self.learn.xb[0].shape[0] // 2
    def after_fit(self): self.dt = time.perf_counter() - self.t0

def main():
    cuda = torch.cuda.is_available()
    ap = argparse.ArgumentParser()
    ap.add_argument('--size', type=int, default=224 if cuda else 32); ap.add_argument('--bs', type=int, default=256 if cuda else 8)
    ap.add_argument('--n', type=int, default=1024 if cuda else 32); ap.add_argument('--epochs', type=int, default=2)
    a = ap.parse_args()
    if cuda: torch.backends.cudnn.benchmark = True
    with tempfile.TemporaryDirectory() as d:
        csv = tiny_table(d, n=a.n, px=a.size)
        if cuda: torch.cuda.reset_peak_memory_stats()
        t = Timer()
        learn = modan_pretrain(csv, epochs=a.epochs, bs=a.bs, size=a.size, path=Path(d)/'run', cbs=[t], progress=False)
    dev = next(learn.model.parameters()).device
    mp = [type(c).__name__ + f"({getattr(c, 'amp_mode', '')})" for c in learn.cbs if type(c).__name__ == 'MixedPrecision']
    print(f"device {dev} ({torch.cuda.get_device_name() if cuda else 'cpu'}), {a.size} px, batch {a.bs} x 2 views, "
          f"{a.n} images x {a.epochs} epochs, mixed precision: {mp or 'off'}, "
          f"channels_last: {learn.model.encoder.net.layer1[0].conv1.weight.is_contiguous(memory_format=torch.channels_last)}")
    print(f"modan_pretrain: {t.n_img / t.dt:.1f} images/s")
    if cuda: print(f"peak GPU memory: {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB allocated, "
                   f"{torch.cuda.max_memory_reserved() / 2**30:.2f} GiB reserved")

if __name__ == '__main__': main()
