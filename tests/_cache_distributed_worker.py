"Run by tests/test_cache_distributed.py under torchrun (2 CPU processes, gloo): pretraining from a cache, each rank recording the rows it reads."
import sys, json
from pathlib import Path
import torch
from modan_nb.cache import CachedImages
from modan_nb.learner import modan_pretrain

def main(csv, cache, out):
    torch.set_num_threads(1)
    read = []
    orig = CachedImages._read
    def rec(self, rows): read.extend(int(r) for r in rows); return orig(self, rows)
    CachedImages._read = rec
    learn = modan_pretrain(csv, epochs=1, bs=8, size=16, path=Path(out)/'run', progress=False, cache=cache)
    rank = torch.distributed.get_rank()
    (Path(out)/f'rank{rank}.json').write_text(json.dumps(dict(rank=rank, read=read, n_steps=learn.n_steps,
                                                               cached=type(learn.dls.train.dataset.x).__name__)))

if __name__ == '__main__': main(*sys.argv[1:])
