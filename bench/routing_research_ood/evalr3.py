import sys, time
sys.path.insert(0, '/work/wt-ood')
from common import *
from threadpoolctl import threadpool_limits
import orchestrator.router as R
real = R.load_encoder()
class FakeEnc:
    def encode(self, texts):
        if all(t in idx for t in texts): return E[[idx[t] for t in texts]]
        return real.encode(texts)
    def encode_one(self, t): return E[idx[t]] if t in idx else real.encode([t])[0]
R.load_encoder = lambda: FakeEnc()
CAP = {}
orig_tf = R.topic_folds
def tf(labels, emb, folds, seed):
    res = orig_tf(labels, emb, folds, seed)
    CAP['orig'] = np.concatenate([labels[np.concatenate([a, b])] for tr, a, b in res if (labels[tr] != R.FALLBACK).any()])
    return res
R.topic_folds = tf
orig_ct = R.choose_threshold
def ct(pred, score, gold):
    CAP['oof'] = (pred, score, gold); return orig_ct(pred, score, gold)
R.choose_threshold = ct
def thr_rules(pred, score, gold, orig):
    gold = np.asarray(gold, object); ins = gold != R.FALLBACK; real = orig == R.FALLBACK; pseudo = ~ins & ~real
    correct = (np.asarray(pred, object) == gold) & ins
    ths = np.unique(score)
    def stat(mask):  # cumulative count of mask rows strictly below each threshold
        o = np.argsort(score); s = score[o]; below = np.searchsorted(s, ths)
        return np.concatenate([[0], np.cumsum(mask[o])])[below]
    kept = (correct.sum() - stat(correct)) / correct.sum()
    acc = (correct.sum() - stat(correct)) / ins.sum()
    rp = stat(pseudo) / max(pseudo.sum(), 1); rr = stat(real) / max(real.sum(), 1); rall = stat(~ins) / (~ins).sum()
    out = {'pooled': ths[np.argmax(np.minimum(kept - .985, rall - .9))]}
    if real.any() and pseudo.any(): out['mean'] = ths[np.argmax(np.minimum(kept - .985, (rp + rr) / 2 - .9))]
    ok = kept >= .985; out['keepfirst'] = ths[ok][-1] if ok.any() else ths[0]
    out['absolute'] = ths[np.argmax(np.minimum(acc - .97, rall - .9))]
    return out
def run(name, tr, te):
    docs = {}
    fb = [t for t, a in tr if a == 'fallback']
    for t, a in tr:
        if a != 'fallback': docs.setdefault(a, []).append(t)
    t0 = time.time(); r = R.Router(docs, fallback_examples=fb); el = time.time() - t0
    texts = [t for t, _ in te]; gold = [a for _, a in te]
    p = r.model.blocked_components([v.transform(texts) for v in r.model.vectorizers], FakeEnc().encode(texts))
    best = p['logit'].argmax(1); rows = np.arange(len(te))
    score = r._score(p, r.calibration)[rows, best]
    rules = thr_rules(*CAP['oof'], CAP['orig'])
    res = {}
    for k, th in rules.items():
        pred = np.where(score >= th, np.array(r.agents, object)[best], 'fallback'); res[k] = metrics(pred, gold)
    print(name, round(el, 1), 's', res, 'oracle@.9', curve(np.array(r.agents, object)[best], score, gold)[0.9], flush=True)
    return res
with threadpool_limits(1):
    tr = split('train', False) + [(t, 'fallback') for t, _ in d['oos_train']]
    which = sys.argv[1:] or ['dev', 'test', 'ldo']
    for w in which:
        if w.startswith('hwu'):
            ex = [json.loads(l) for l in open(f'/tmp/ood/hwu/{w[4:]}.jsonl')]
            cs = [json.loads(l) for l in open('/tmp/ood/hwu/cases.jsonl')]
            run(w, [(r['text'], r['agent']) for r in ex], [(r['text'], r['expected']) for r in cs])
    if 'dev' in which: run('dev', tr, split('val'))
    if 'test' in which: run('test', tr, split('test'))
    if 'ldo' in which:
        res = []
        for hold in [['small_talk', 'travel'], ['credit_cards', 'home'], ['auto_and_commute', 'work'], ['kitchen_and_dining', 'meta'], ['banking', 'utility']]:
            trr = [r for r in tr if r[1] not in hold]
            te = [(t, 'fallback' if a in hold else a) for t, a in split('val')]
            res.append(run(f'ldo{hold}', trr, te))
        for k in res[0]:
            a = np.array([x[k] for x in res]); print('ldo', k, 'mean', a.mean(0).round(4), 'worst', a.min(0))
