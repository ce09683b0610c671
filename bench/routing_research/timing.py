import sys, time, numpy as np
sys.path.insert(0,'/tmp/routing'); from common import *
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.svm import LinearSVC
from sklearn.preprocessing import normalize
from scipy.sparse import hstack, csr_matrix
X,y,Xd,yd=load(); y=np.array(y); yd=np.array(yd)
E=normalize(np.load('cache/minilm_train.npy'))
vw=TfidfVectorizer(ngram_range=(1,2),sublinear_tf=True); vc=TfidfVectorizer(analyzer='char_wb',ngram_range=(2,5),sublinear_tf=True,min_df=2)
A=normalize(hstack([vw.fit_transform(X),vc.fit_transform(X)]).tocsr())
F=hstack([A,csr_matrix(E)]).tocsr()
for name,f in [('lr tf C30',lambda: LogisticRegression(C=30,max_iter=3000).fit(A,y)),
               ('lr cat C30',lambda: LogisticRegression(C=30,max_iter=3000).fit(F,y)),
               ('lr em C10',lambda: LogisticRegression(C=10,max_iter=3000).fit(E,y)),
               ('svc cat',lambda: LinearSVC(C=1).fit(F,y))]:
    t=time.time(); m=f(); print(name,time.time()-t, getattr(m,'n_iter_',None),flush=True)
