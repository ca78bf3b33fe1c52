"Run by tests/test_distributed_pretrain.py under torchrun (2 CPU processes, gloo)."
import os, sys, json
from pathlib import Path
import torch
from fastai.callback.core import Callback
sys.path.insert(0, str(Path(__file__).parent))
from modan_nb.learner import modan_pretrain, MultiViewLoss, gather_batch

class SeenBatch(Callback):
    "Record how many images the contrastive loss saw in each step."
    order = 100
    def before_fit(self): self.seen = []
    def after_loss(self): self.seen.append(self.learn.loss_func.n_seen)

def main(csv, out):
    torch.set_num_threads(1)
    seen = SeenBatch()
    learn = modan_pretrain(csv, epochs=1, bs=8, size=16, path=Path(out)/'run', cbs=[seen], progress=False)
    rank, ws = torch.distributed.get_rank(), torch.distributed.get_world_size()
    # the gather is exact: this rank's part of the global loss and gradient
    torch.manual_seed(0)
    pred, y = torch.randn(2*4*ws, 8), torch.randint(0, 2, (4*ws, 3)).float()
    y[:, 0] = 1
    V, B = 2, 4
    mine = torch.cat([pred[v*B*ws + rank*B: v*B*ws + (rank+1)*B] for v in range(V)]).requires_grad_()
    class Dot(torch.nn.Module): # any loss of all pairs: sum of the Gram matrix weighted by y
        def forward(self, z, y): f = z.reshape(-1, z.shape[-1]); w = y @ y.T; return (w.repeat(V, V)*(f @ f.T)).mean()
    loss = MultiViewLoss(Dot(), V)(mine, y[rank*B:(rank+1)*B])
    loss.backward()
    full = pred.clone().requires_grad_()
    ref = MultiViewLoss(Dot(), V, gather=False)(full, y)
    ref.backward()
    ref_mine = torch.cat([full.grad[v*B*ws + rank*B: v*B*ws + (rank+1)*B] for v in range(V)])
    res = dict(rank=rank, ws=ws, seen=seen.seen, n_steps=learn.n_steps, loss=float(loss), ref=float(ref),
               grad_ok=bool(torch.allclose(mine.grad, ws*ref_mine, atol=1e-5)),
               encoder=(Path(out)/'run'/'encoder.pth').is_file())
    (Path(out)/f'rank{rank}.json').write_text(json.dumps(res))

if __name__ == '__main__': main(sys.argv[1], sys.argv[2])
