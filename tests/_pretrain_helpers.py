"Shared helpers for the pretraining tests: a tiny metadata table of random PNGs."
from pathlib import Path
import numpy as np, pandas as pd
from PIL import Image

def tiny_table(d, n=16, px=32, seed=0):
    "Write `n` random `px`-pixel PNGs and a metadata.csv (path, modality, anatomy, label) under `d`; return the CSV path."
    d = Path(d); (d/'img').mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed); rows = []
    mods, anas = ['CT', 'MR', 'US', 'MR'], ['brain', 'knee', 'breast', 'brain|spine']
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (px, px), dtype=np.uint8)).save(d/'img'/f'{i}.png')
        rows.append(dict(path=f'img/{i}.png', modality=mods[i % 4], anatomy=anas[i % 4], label=['normal', 'lesion'][i % 2]))
    pd.DataFrame(rows).to_csv(d/'metadata.csv', index=False)
    return d/'metadata.csv'
