from common import *
import sys
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.svm import LinearSVC
from sklearn.preprocessing import normalize
from scipy.sparse import hstack, csr_matrix
from threadpoolctl import threadpool_limits
BG = sys.argv[1] if len(sys.argv) > 1 else 'none'
def fit_predict(tr, te, K=5):
    trt = [t for t, _ in tr]; y = np.array([a for _, a in tr], object)
    Etr = emb(tr); Ete = emb(te)
    if BG != 'none':
        n = int(BG); trt = trt + wiki[:n]; y = np.concatenate([y, ['fallback'] * n]); Etr = np.vstack([Etr, W[:n]])
    wv = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True); cv = TfidfVectorizer(analyzer='char_wb', ngram_range=(2, 5), sublinear_tf=True, min_df=2)
    wv.fit(trt); cv.fit(trt)
    X = lambda tt, ee: hstack([normalize(hstack([wv.transform(tt), cv.transform(tt)])), csr_matrix(0.5 * ee)]).tocsr()
    clf = LinearSVC(C=1).fit(X(trt, Etr), y)
    D = clf.decision_function(X([t for t, _ in te], Ete))
    cls = np.array(clf.classes_, object); ag = [i for i, c in enumerate(cls) if c != 'fallback']
    fb = [i for i, c in enumerate(cls) if c == 'fallback']
    bi = np.array(ag)[D[:, ag].argmax(1)]; best = cls[bi]
    r = np.arange(len(te)); out = {'svc': D[r, bi]}
    if fb: out['svc-fb'] = D[r, bi] - D[:, fb[0]]
    S = Ete @ Etr.T
    knn = np.zeros(len(te)); knnfb = np.full(len(te), -1.0)
    for a in set(best):
        cols = np.where(y == a)[0]; m = best == a
        knn[m] = -np.sort(-S[np.ix_(m, cols)], 1)[:, :K].mean(1)
    cols = np.where(y == 'fallback')[0]
    if len(cols): knnfb = -np.sort(-S[:, cols], 1)[:, :K].mean(1)
    out['knn'] = knn
    if len(cols): out['knn-fb'] = knn - knnfb
    z = lambda v: (v - v.mean()) / v.std()
    out['svc+knn'] = z(out['svc']) + z(knn)
    if fb: out['svcfb+knn'] = z(out['svc-fb']) + z(knn); out['svcfb+knnfb'] = z(out['svc-fb']) + z(out['knn-fb'])
    return best, out
def report(name, tr, te):
    best, out = fit_predict(tr, te); gold = [a for _, a in te]
    print(name, 'cls acc', metrics(best, gold)[0], {k: curve(best, v, gold)[0.9] for k, v in out.items()}, flush=True)
with threadpool_limits(1):
    tr = split('train', False) + [(t, 'fallback') for t, _ in d['oos_train']]
    report('dev', tr, split('val'))
    report('test', tr, split('test'))
    for hold in ldo_rotations(2, 3):
        trr = [r for r in tr if r[1] not in hold]
        te = [(t, 'fallback' if a in hold else a) for t, a in split('val')]
        report(f'ldo{hold}', trr, te)
    for hold in ldo_rotations(2, 2, seed=1):
        trr = [r for r in split('train', False) if r[1] not in hold]
        te = [(t, 'fallback' if a in hold else a) for t, a in split('val', False)]
        report(f'ldo-nofb{hold}', trr, te)
