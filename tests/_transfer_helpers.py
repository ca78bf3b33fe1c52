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
