"A tiny encoder for the transfer tests: (B,1,H,W) in [0,1] -> (B, n_features), with the normalisation an Encoder carries."
import torch, torch.nn as nn

class TinyEncoder(nn.Module):
    def __init__(self, n_features=8):
        super().__init__()
        self.n_features = n_features
        self.register_buffer('mean', torch.full((1, 1, 1, 1), 0.5)); self.register_buffer('std', torch.full((1, 1, 1, 1), 0.25))
        self.body = nn.Sequential(nn.Conv2d(1, n_features, 3, padding=1), nn.BatchNorm2d(n_features), nn.ReLU(),
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten())
    def forward(self, x): return self.body((x - self.mean) / self.std)

def toy_task(n=24, size=8, n_folds=None, seed=0):
    "A tiny two-class task: (table of n images of patients of 2, uint8 images (n,1,size,size)); `n_folds` adds a fold column (4 images a block)."
    import numpy as np, pandas as pd
    g = torch.Generator().manual_seed(seed)
    lab = (torch.arange(n)//2) % 2
    x = (torch.rand(n, 1, size, size, generator=g)*150 + 60*lab[:, None, None, None]).to(torch.uint8)
    df = pd.DataFrame(dict(path=[f'img{i:02d}.png' for i in range(n)], label=lab.numpy(), group=[f'p{i//2:02d}' for i in range(n)]))
    if n_folds: df['fold'] = (np.arange(n)//4) % n_folds
    return df, x
