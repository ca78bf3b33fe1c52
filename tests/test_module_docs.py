"Every module's docstring (the notebook's one-line description) is a whole sentence: nbdev keeps only the first line of the description."
import importlib, pkgutil
import modan_nb

def test_module_docstrings_are_whole_sentences():
    cut = []
    for m in pkgutil.iter_modules(modan_nb.__path__):
        if m.name.startswith('_'): continue
        doc = (importlib.import_module(f'modan_nb.{m.name}').__doc__ or '').strip()
        if not doc or not doc.endswith(('.', '?', '!')): cut.append((m.name, doc[-60:]))
    assert not cut, f"module docstrings cut mid-sentence (make the notebook's '> ...' description one line): {cut}"
