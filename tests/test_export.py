"Exported encoders (notebook 05b): the hub folder's files, its three loading routes, the model card, and exports at the end of a run."
import json, subprocess, sys, os
from pathlib import Path
import pytest, torch, torch.nn as nn
from modan_nb.models import create_encoder, load_encoder, save_encoder
from modan_nb.export import export_encoder, load_exported, load_safetensors, save_safetensors, CONFIG_KEYS
from modan_nb.metadata import MetadataEncoder
import pandas as pd

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]

def _features(m, x):
    with torch.no_grad(): return m.eval()(x)

@pytest.fixture
def x(): return torch.rand(3, 1, 32, 32, generator=torch.Generator().manual_seed(0))

@pytest.mark.parametrize('stem', ['paper', 'torchvision'])
def test_load_encoder_reads_the_folder(tmp_path, x, stem):
    enc = create_encoder(stem=stem)
    for p in enc.parameters(): p.data.normal_(0, 0.05)   # not the initial weights
    export_encoder(enc, tmp_path/'e', size=32)
    back, meta, info = load_encoder(tmp_path/'e')
    assert (back.arch, back.stem, back.n_in) == ('resnet18', stem, 1)
    assert torch.allclose(_features(back, x), _features(enc, x), atol=1e-5)
    # create_encoder(weights=folder) goes through load_encoder
    assert torch.allclose(_features(create_encoder(weights=tmp_path/'e'), x), _features(enc, x), atol=1e-5)

def test_timm_loads_the_7x7_stem(tmp_path, x):
    timm = pytest.importorskip('timm')
    enc = create_encoder(stem='torchvision')
    for p in enc.parameters(): p.data.normal_(0, 0.05)
    export_encoder(enc, tmp_path/'e', size=32)
    cfg = json.loads((tmp_path/'e'/'config.json').read_text())
    m = timm.create_model('resnet18', in_chans=1, num_classes=0, pretrained=True,
                          pretrained_cfg_overlay=dict(file=str(tmp_path/'e'/'model.safetensors')))
    # the Encoder normalises inside; timm's model is fed (x - mean) / std by hand, as config.json says
    assert (cfg['mean'], cfg['std'], cfg['normalize']) == (0.449, 0.226, True)
    assert cfg['pretrained_cfg']['mean'] == [0.449] and cfg['pretrained_cfg']['input_size'] == [1, 32, 32]
    assert (_features(m, (x - cfg['mean']) / cfg['std']) - _features(enc, x)).abs().max() < 1e-5

def test_two_line_route_for_the_3x3_stem(tmp_path, x):
    timm = pytest.importorskip('timm'); st = pytest.importorskip('safetensors.torch')
    enc = create_encoder(stem='paper')
    for p in enc.parameters(): p.data.normal_(0, 0.05)
    export_encoder(enc, tmp_path/'e')
    m = timm.create_model('resnet18', in_chans=1, num_classes=0); m.conv1 = nn.Conv2d(1, 64, 3, 1, 1, bias=False)
    m.load_state_dict(st.load_file(str(tmp_path/'e'/'model.safetensors')))   # strict: every key fits
    assert (_features(m, (x - 0.449) / 0.226) - _features(enc, x)).abs().max() < 1e-5
    card = (tmp_path/'e'/'README.md').read_text()
    assert 'model.conv1 = torch.nn.Conv2d(1, 64, 3, 1, 1, bias=False)' in card

def test_safetensors_library_agrees(tmp_path):
    st = pytest.importorskip('safetensors.torch')
    t = {'a': torch.randn(4, 5), 'i': torch.arange(6).reshape(2, 3), 'h': torch.randn(3).half()}
    save_safetensors(t, tmp_path/'ours.safetensors')
    theirs = st.load_file(str(tmp_path/'ours.safetensors'))
    assert all(torch.equal(theirs[k], t[k]) for k in t)
    st.save_file(t, str(tmp_path/'lib.safetensors'), metadata={'format': 'pt'})
    ours, meta = load_safetensors(tmp_path/'lib.safetensors')
    assert all(torch.equal(ours[k], t[k]) for k in t) and meta == {'format': 'pt'}

def test_config_and_model_card_carry_the_fields(tmp_path):
    from modan_nb import __version__
    from modan_nb.data import sha256_file
    csv = tmp_path/'meta.csv'
    df = pd.DataFrame(dict(path=['a.png', 'b.png'], modality=['CT', 'MR'], anatomy=['brain', 'knee']))
    df.to_csv(csv, index=False)
    meta = MetadataEncoder().fit(df)
    f = save_encoder(tmp_path/'enc.pth', create_encoder(), meta, method='modan', recipe='paper', epochs=3, lr=0.5, size=48, seed=1)
    export_encoder(f, tmp_path/'e', table=csv, evaluation=pd.DataFrame(dict(task=['acl'], protocol=['finetune'], auc=[0.75])))
    cfg = json.loads((tmp_path/'e'/'config.json').read_text())
    assert [k for k in CONFIG_KEYS if k not in cfg] == []
    assert (cfg['architecture'], cfg['stem'], cfg['in_chans'], cfg['image_size'], cfg['pixel_range']) == ('resnet18', 'paper', 1, 48, [0., 1.])
    assert cfg['modan_nb_version'] == __version__ and cfg['method'] == 'modan' and cfg['recipe'] == 'paper'
    assert cfg['settings']['epochs'] == 3 and cfg['settings']['lr'] == 0.5 and cfg['settings']['seed'] == 1
    assert cfg['pretraining_table']['sha256'] == sha256_file(csv) and cfg['pretraining_table']['n_rows'] == 2
    assert cfg['metadata_vocabulary']['vocab'] == meta.to_dict()['vocab']
    card = (tmp_path/'e'/'README.md').read_text()
    front = card.split('---\n')[1]
    import yaml
    fm = yaml.safe_load(front)
    assert fm['license'] == 'apache-2.0' and fm['pipeline_tag'] == 'image-feature-extraction'
    for part in ('## Trained on', sha256_file(csv), '## How', '## Evaluation', '0.75', '## Limits', '## Load it', "load_encoder('"):
        assert part in card, part
    enc, m2, info = load_encoder(tmp_path/'e')
    assert m2.to_dict()['vocab'] == meta.to_dict()['vocab'] and info['method'] == 'modan'

def test_unnormalised_encoder_records_no_normalisation(tmp_path, x):
    enc = create_encoder(stem='torchvision', normalize=False)
    export_encoder(enc, tmp_path/'e')
    cfg = json.loads((tmp_path/'e'/'config.json').read_text())
    assert (cfg['normalize'], cfg['mean'], cfg['std']) == (False, 0., 1.)
    back = load_encoder(tmp_path/'e')[0]
    assert back.normalize is False and torch.allclose(_features(back, x), _features(enc, x), atol=1e-6)

def test_bad_folders_say_what_is_wrong(tmp_path):
    export_encoder(create_encoder(), tmp_path/'e')
    (tmp_path/'e'/'model.safetensors').write_bytes((tmp_path/'e'/'model.safetensors').read_bytes()[:1000])
    with pytest.raises(ValueError, match='is not the file .*config.json was written with'): load_encoder(tmp_path/'e')   # cut by a kill
    with pytest.raises(ValueError, match='is not a valid safetensors file'): load_safetensors(tmp_path/'e'/'model.safetensors')
    export_encoder(create_encoder(stem='torchvision'), tmp_path/'tv')   # weights of another export beside this config: refused
    (tmp_path/'e'/'model.safetensors').write_bytes((tmp_path/'tv'/'model.safetensors').read_bytes())
    with pytest.raises(ValueError, match='SHA-256 differs'): load_encoder(tmp_path/'e')
    (tmp_path/'e'/'model.safetensors').unlink()
    with pytest.raises(FileNotFoundError, match='no model.safetensors'): load_encoder(tmp_path/'e')
    (tmp_path/'e'/'config.json').write_text('{"format": "other"}')
    with pytest.raises(ValueError, match='not a modan_nb export'): load_encoder(tmp_path/'e')
    with pytest.raises(TypeError, match="needs an Encoder"): export_encoder(3, tmp_path/"x")
