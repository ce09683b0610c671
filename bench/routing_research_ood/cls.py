from common import *
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC
from sklearn.preprocessing import normalize
from scipy.sparse import hstack, csr_matrix
from threadpoolctl import threadpool_limits
tr = split('train', oos=False); te = split('val', oos=False)
ytr = [a for _, a in tr]; yte = [a for _, a in te]
def feats(fit_rows, rows_list, w):
    wv = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True); cv = TfidfVectorizer(analyzer='char_wb', ngram_range=(2, 5), sublinear_tf=True, min_df=2)
    ft = [t for t, _ in fit_rows]; wv.fit(ft); cv.fit(ft)
    return [hstack([normalize(hstack([wv.transform([t for t,_ in r]), cv.transform([t for t,_ in r])])), csr_matrix(w * emb(r))]).tocsr() for r in rows_list]
with threadpool_limits(1):
    t = time.time(); Xtr, Xte = feats(tr, [tr, te], 0.5); print('feats', round(time.time() - t, 1), Xtr.shape)
    for name, clf in [('svc C=1', LinearSVC(C=1)), ('svc C=0.5', LinearSVC(C=0.5)), ('lr C=30 it200', LogisticRegression(C=30, max_iter=200)), ('lr C=10 it100', LogisticRegression(C=10, max_iter=100))]:
        t = time.time(); clf.fit(Xtr, ytr); el = time.time() - t
        print(name, round(el, 1), round((clf.predict(Xte) == np.array(yte)).mean(), 4), flush=True)
    for name, clf in [('emb-only lr C=10', LogisticRegression(C=10, max_iter=300)), ('emb svc C=1', LinearSVC(C=1))]:
        t = time.time(); clf.fit(emb(tr), ytr); el = time.time() - t
        print(name, round(el, 1), round((clf.predict(emb(te)) == np.array(yte)).mean(), 4), flush=True)
