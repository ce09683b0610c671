import sys, time
sys.path.insert(0, '/work/wt-ood')
from common import *
from threadpoolctl import threadpool_limits
import orchestrator.router as R
class FakeEnc:
    def encode(self, texts): return E[[idx[t] for t in texts]]
    def encode_one(self, t): return E[idx[t]]
R.load_encoder = lambda: FakeEnc()
def run(name, tr, te):
    docs = {}
    fb = [t for t, a in tr if a == 'fallback']
    for t, a in tr:
        if a != 'fallback': docs.setdefault(a, []).append(t)
    t0 = time.time(); r = R.Router(docs, fallback_examples=fb); el = time.time() - t0
    texts = [t for t, _ in te]; gold = [a for _, a in te]
    p = r.model.blocked_components([v.transform(texts) for v in r.model.vectorizers], E[[idx[t] for t in texts]])
    best = p['logit'].argmax(1); rows = np.arange(len(te))
    score = r._score(p, r.calibration)[rows, best]
    pred = np.where(score >= r.calibration['threshold'], np.array(r.agents, object)[best], 'fallback')
    print(name, 'train', round(el, 1), 's', 'at CV thr', metrics(pred, gold), 'oracle@.9', curve(np.array(r.agents, object)[best], score, gold)[0.9], flush=True)
    return metrics(pred, gold)
with threadpool_limits(1):
    tr = split('train', False) + [(t, 'fallback') for t, _ in d['oos_train']]
    which = sys.argv[1:] or ['dev', 'test', 'ldo']
    if 'dev' in which: run('dev', tr, split('val'))
    if 'test' in which: run('test', tr, split('test'))
    if 'ldo' in which:
        res = []
        for hold in ldo_rotations(2, 5):
            trr = [r for r in tr if r[1] not in hold]
            te = [(t, 'fallback' if a in hold else a) for t, a in split('val')]
            res.append(run(f'ldo{hold}', trr, te))
        res = np.array(res); print('ldo mean', res.mean(0).round(4), 'worst', res.min(0))
