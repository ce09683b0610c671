import sys, time, cProfile, pstats
sys.path.insert(0, '/work/wt-ood')
from common import *
from threadpoolctl import threadpool_limits
import orchestrator.router as R
class FakeEnc:
    def encode(self, texts): return E[[idx[t] for t in texts]]
    def encode_one(self, t): return E[idx[t]]
R.load_encoder = lambda: FakeEnc()
rng = np.random.default_rng(0)
tr = split('train', False); tr = [tr[i] for i in rng.choice(len(tr), 9900, replace=False)] + [(t, 'fallback') for t, _ in d['oos_train']]
docs = {}
for t, a in tr:
    if a != 'fallback': docs.setdefault(a, []).append(t)
fb = [t for t, a in tr if a == 'fallback']
with threadpool_limits(1):
    pr = cProfile.Profile(); t0 = time.time(); pr.enable(); R.Router(docs, fallback_examples=fb); pr.disable(); print('total', time.time() - t0)
pstats.Stats(pr).sort_stats('cumulative').print_stats(18)
