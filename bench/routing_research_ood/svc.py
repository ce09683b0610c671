from common import *
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.svm import LinearSVC
from sklearn.preprocessing import normalize
from scipy.sparse import hstack, csr_matrix
from threadpoolctl import threadpool_limits
tr = split('train', False) + [(t, 'fallback') for t, _ in d['oos_train']]; te = split('val', False)
ytr = [a for _, a in tr]; yte = np.array([a for _, a in te])
wv = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True); cv = TfidfVectorizer(analyzer='char_wb', ngram_range=(2, 5), sublinear_tf=True, min_df=2)
ft = [t for t, _ in tr]; wv.fit(ft); cv.fit(ft)
X = lambda r: hstack([normalize(hstack([normalize(wv.transform([t for t,_ in r])), normalize(cv.transform([t for t,_ in r]))])), csr_matrix(0.5 * emb(r))]).tocsr()
Xtr, Xte = X(tr), X(te)
with threadpool_limits(1):
    for kw in [dict(C=1), dict(C=1, tol=1e-3), dict(C=0.5, tol=1e-3), dict(C=1, max_iter=100)]:
        t = time.time(); clf = LinearSVC(**kw).fit(Xtr, ytr); el = time.time() - t
        print(kw, round(el, 1), round((clf.predict(Xte) == yte).mean(), 4), flush=True)
