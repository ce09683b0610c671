import sys, numpy as np
sys.path.insert(0,'/tmp/routing'); from common import *
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC
from sklearn.preprocessing import normalize
from scipy.sparse import hstack, csr_matrix
X,y,Xd,yd=load(); y=np.array(y); yd=np.array(yd); ins=y!='fallback'; insd=yd!='fallback'
vw=TfidfVectorizer(ngram_range=(1,2),sublinear_tf=True); vc=TfidfVectorizer(analyzer='char_wb',ngram_range=(2,5),sublinear_tf=True,min_df=2)
A=normalize(hstack([vw.fit_transform(X),vc.fit_transform(X)]).tocsr()); Ad=normalize(hstack([vw.transform(Xd),vc.transform(Xd)]).tocsr())
E=normalize(np.load('cache/minilm_train.npy')); Ed=normalize(np.load('cache/minilm_dev.npy'))
for name,(F,Fd) in {'tfidf':(A,Ad),'emb':(E,Ed),'both':(hstack([A,csr_matrix(E)]).tocsr(),hstack([Ad,csr_matrix(Ed)]).tocsr())}.items():
    for C in [1,10]:
        s=LinearSVC(C=C).fit(F[ins],y[ins]); print(name,'svc C',C,(s.predict(Fd[insd])==yd[insd]).mean())
