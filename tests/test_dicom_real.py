"read_dicom_metadata on the real DICOM headers of ../shared/data/dicom (skipped where that folder is absent)."
import shutil, warnings
from pathlib import Path
import pytest
from modan_nb.core import shared_data_dir
from modan_nb.metadata import read_dicom_metadata

SHARED = shared_data_dir()

def _dicom_dir():
    if SHARED is None or not (SHARED/'dicom').is_dir(): pytest.skip("shared data dicom/ not available")
    return SHARED/'dicom'

def _read(*a, **k):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore'); return read_dicom_metadata(*a, **k)

def test_real_headers_modality_anatomy_and_sources():
    t = _read(_dicom_dir())
    assert len(t) == 9                                          # the scan does not stop at a file without anatomy
    t = t.assign(file=t.path.map(lambda p: Path(p).name)).set_index('file')
    tcia = [f'ID_000{i}_AGE_00{a}_CONTRAST_1_CT.dcm' for i, a in enumerate([60, 69, 74, 75])]
    for f in tcia: assert (t.loc[f, 'modality'], t.loc[f, 'anatomy'], t.loc[f, 'anatomy_source']) == ('CT', 'chest', 'BodyPartExamined')
    assert t.loc[tcia[2], 'BodyPartExamined'] == 'LUNG'         # 'LUNG' meets 'chest'
    assert t.loc['MR-SIEMENS-DICOM-WithOverlays.dcm', ['modality', 'anatomy']].tolist() == ['MR', 'abdomen']
    assert t.loc['MR2_UNCI.dcm', ['modality', 'anatomy', 'anatomy_source']].tolist() == ['MR', 'shoulder', 'StudyDescription']
    none = ['693_UNCI.dcm', 'CT_small.dcm', 'OBXXXX1A.dcm']
    assert sorted(t.index[t.anatomy == '']) == none and sorted(Path(p).name for p in t.attrs['unresolved'].path) == none
    assert t.loc[none, 'modality'].tolist() == ['CT', 'CT', 'US']
    assert t.loc['693_UNCI.dcm', 'SeriesDescription'] == '5/5mm Plain'   # listed with its descriptions
    assert (t.modality_source == 'Modality').all()

def test_real_headers_unknown_listed_then_mapped():
    d = _dicom_dir()
    with pytest.warns(UserWarning, match=r"(?s)3 DICOM file\(s\) name no known anatomy.*693_UNCI\.dcm: SeriesDescription='5/5mm Plain'.*OBXXXX1A\.dcm: no description tags"):
        read_dicom_metadata(d)
    with pytest.raises(ValueError, match=r"(?s)693_UNCI.*CT_small.*OBXXXX1A"): read_dicom_metadata(d, unknown='raise')
    m = _read(d, anatomy_map={'5/5mm Plain': 'head'})
    row = m[m.path.str.endswith('693_UNCI.dcm')].iloc[0]
    assert (row.anatomy, row.anatomy_source) == ('brain', 'SeriesDescription (anatomy_map)')
    assert len(_read(d, unknown='drop')) == 6

def test_real_file_truncated_or_empty_is_named_and_skippable(tmp_path):
    d = _dicom_dir()
    for f in ['MR2_UNCI.dcm', 'CT_small.dcm']: shutil.copy(d/f, tmp_path/f)
    b = (d/'ID_0000_AGE_0060_CONTRAST_1_CT.dcm').read_bytes()
    (tmp_path/'cut_pixels.dcm').write_bytes(b[:len(b) // 2])             # the pixel data cut short (deferred value)
    (tmp_path/'cut_header.dcm').write_bytes(b[:700])                     # the header cut short
    (tmp_path/'empty.dcm').write_bytes(b'')
    with pytest.raises(ValueError, match=r"cut_header\.dcm: no pixel data"): read_dicom_metadata(tmp_path/'cut_header.dcm')
    with pytest.raises(ValueError, match=r"cut_pixels\.dcm: truncated: its pixel data needs \d+ bytes"): read_dicom_metadata(tmp_path/'cut_pixels.dcm')
    with pytest.raises(ValueError, match=r"empty\.dcm: an empty \(0-byte\) file"): read_dicom_metadata(tmp_path/'empty.dcm')
    t = _read(tmp_path, missing='skip')
    assert sorted(Path(p).name for p in t.path) == ['CT_small.dcm', 'MR2_UNCI.dcm']
    assert sorted(Path(p).name for p, _ in t.attrs['skipped']) == ['cut_header.dcm', 'cut_pixels.dcm', 'empty.dcm']
