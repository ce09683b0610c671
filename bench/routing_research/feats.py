"""compute a bank of OOS scores for dev (fit on all examples) and OOF for train (5-fold) - cached"""
import sys, numpy as np
sys.path.insert(0,'/tmp/routing'); from common import *
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import normalize
from scipy.sparse import hstack
X,y,Xd,yd=load(); y=np.array(y); yd=np.array(yd)
E=normalize(np.load('cache/minilm_train.npy')); Ed=normalize(np.load('cache/minilm_dev.npy'))
intent=np.array([f'{y[i]}#{i//100}' if y[i]!='fallback' else 'fallback' for i in range(len(y))])
def scores(tr, Xte, Ete):
    Xtr=[X[i] for i in tr]; ytr=y[tr]; Etr=E[tr]; itr=intent[tr]; ins=ytr!='fallback'
    vw=TfidfVectorizer(ngram_range=(1,2),sublinear_tf=True); vc=TfidfVectorizer(analyzer='char_wb',ngram_range=(2,5),sublinear_tf=True,min_df=2)
    A=normalize(hstack([vw.fit_transform(Xtr),vc.fit_transform(Xtr)]).tocsr()); At=normalize(hstack([vw.transform(Xte),vc.transform(Xte)]).tocsr())
    out={}
    clf=LogisticRegression(C=30,max_iter=3000).fit(A,ytr); P=clf.predict_proba(At); cl=clf.classes_; fi=list(cl).index('fallback')
    Pin=P.copy(); Pin[:,fi]=-1; out['tf_pred']=cl[Pin.argmax(1)]; out['tf_max']=Pin.max(1); out['tf_nfb']=1-P[:,fi]
    S=(At@A[ins].T).toarray(); S.sort(1); out['tf_knn5']=S[:,-5:].mean(1); out['tf_knn1']=S[:,-1]
    S=Ete@Etr[ins].T; S.sort(1); out['em_knn1']=S[:,-1]; out['em_knn20']=S[:,-20:].mean(1)
    clf=LogisticRegression(C=10,max_iter=3000).fit(Etr,ytr); P=clf.predict_proba(Ete); cl=clf.classes_; fi=list(cl).index('fallback')
    out['em_nfb']=1-P[:,fi]; Pin=P.copy(); Pin[:,fi]=-1; out['em_max']=Pin.max(1); out['em_pred']=cl[Pin.argmax(1)]
    L=itr[ins]; cls=np.unique(L); mu=np.stack([Etr[ins][L==c].mean(0) for c in cls])
    R=Etr[ins]-mu[np.searchsorted(cls,L)]; cov=R.T@R/len(R); cov=0.7*cov+0.3*np.trace(cov)/cov.shape[0]*np.eye(cov.shape[0])
    Pm=np.linalg.inv(cov); D=Ete[:,None,:]-mu[None]; d=np.einsum('nkd,de,nke->nk',D,Pm,D); out['em_maha_int']=-d.min(1)
    return out
dev=scores(np.arange(len(X)),Xd,Ed)
np.save('cache/feats_dev.npy',dev,allow_pickle=True)
from sklearn.model_selection import StratifiedKFold
oof={}
for tr,te in StratifiedKFold(5,shuffle=True,random_state=0).split(X,y):
    o=scores(tr,[X[i] for i in te],E[te])
    for k,v in o.items():
        oof.setdefault(k,np.empty(len(X),dtype=v.dtype)); oof[k][te]=v
np.save('cache/feats_oof.npy',oof,allow_pickle=True)
