"""A pretraining table is read and checked once, at the boundary (issue 20): one `modan_pretrain(csv)` reads the CSV once,
checks its values once and each of its columns once before the first batch; the floors below (`pretrain`, `_make_dls`,
`check_pretrain_table`, `pretrain_dls`, `read_pretrain_table`, `MetadataEncoder.fit` / `encode`) take the checked table as it is."""
import collections, hashlib
import pandas as pd, pytest
import modan_nb.metadata as metadata, modan_nb.data as data, modan_nb.learner as learner
from modan_nb.learner import modan_pretrain, ce_pretrain, settings_run_dir
from _pretrain_helpers import tiny_table

@pytest.fixture
def calls(monkeypatch):
    "Count the reads and checks: every module that imported a name gets the counting one."
    log = collections.defaultdict(list)
    def spy(name, f):
        def g(*a, **k): log[name].append((a, k)); return f(*a, **k)
        return g
    for mod in (metadata, data, learner):
        if hasattr(mod, 'check_columns'): monkeypatch.setattr(mod, 'check_columns', spy('check_columns', mod.check_columns))
        if hasattr(mod, 'check_values'): monkeypatch.setattr(mod, 'check_values', spy('check_values', metadata.check_values))
    monkeypatch.setattr(metadata, 'read_metadata_csv', spy('read_metadata_csv', metadata.read_metadata_csv))
    monkeypatch.setattr(data, 'read_metadata_csv', metadata.read_metadata_csv)
    monkeypatch.setattr(data, 'sha256_file', spy('sha256_file', data.sha256_file))
    monkeypatch.setattr(pd, 'read_csv', spy('read_csv', pd.read_csv))
    return log

def _columns_checked(log):
    "How often each column was checked for presence (`check_columns`, and `check_values`' own check of its fields)."
    n = collections.Counter()
    for a, k in log['check_columns']: n.update(k.get('cols', a[1] if len(a) > 1 else None))
    return n

def test_one_modan_pretrain_reads_and_checks_the_table_once(tmp_path, monkeypatch, calls):
    monkeypatch.setenv('MODAN_DATA', str(tmp_path/'data'))   # no path: the run folder is named by the table's SHA-256
    csv = tiny_table(tmp_path)
    learn = modan_pretrain(csv, epochs=1, bs=8, size=16, progress=False)
    assert len(learn.recorder.losses) == 2
    assert len(calls['check_values']) == 1                                        # the values are checked once
    twice = {c: n for c, n in _columns_checked(calls).items() if n > 1}
    assert twice == {}, f"columns checked more than once: {twice}"
    assert len(calls['read_csv']) == 1 and len(calls['read_metadata_csv']) == 1   # the CSV is parsed once
    assert len(calls['sha256_file']) == 0                                         # and its bytes hashed from that one read
    assert _columns_checked(calls)['modality'] == 1 and _columns_checked(calls)['path'] == 1
    # the run folder is the one the CSV names, as before the table was read once
    assert learn.path == settings_run_dir('modan', csv, size=16, epochs=1, bs=8)
    assert learn.dls.table.attrs.get('sha256') == hashlib.sha256(csv.read_bytes()).hexdigest()

def test_ce_checks_its_label_column_once(tmp_path, calls):
    csv = tiny_table(tmp_path)
    ce_pretrain(csv, epochs=1, bs=8, size=16, path=tmp_path/'ce', progress=False)
    assert len(calls['read_csv']) == 1 and len(calls['check_values']) == 1
    assert max(_columns_checked(calls).values()) == 1

def test_a_table_changed_after_its_check_is_checked_again(tmp_path):
    csv = tiny_table(tmp_path)
    t = data.read_pretrain_table(csv)
    assert data.read_pretrain_table(t) is t
    bad = t.copy(); bad.loc[0, 'modality'] = 'Ultrasoud'
    with pytest.raises(ValueError, match="modality 'Ultrasoud' -> 'US'"): modan_pretrain(bad, epochs=1, bs=8, size=16, path=tmp_path/'x')
