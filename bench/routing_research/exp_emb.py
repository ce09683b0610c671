import sys, time, numpy as np
sys.path.insert(0,'/tmp/routing'); from common import *
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import normalize
X,y,Xd,yd=load(); y=np.array(y)
E=normalize(np.load('cache/minilm_train.npy')); Ed=normalize(np.load('cache/minilm_dev.npy'))
ins=y!='fallback'
intent=np.array([f'{y[i]}#{i//100}' if y[i]!='fallback' else 'fallback' for i in range(len(y))])
for C in [1,10,100]:
    clf=LogisticRegression(C=C,max_iter=3000).fit(E,y); P=clf.predict_proba(Ed); cl=clf.classes_
    fi=list(cl).index('fallback'); Pin=P.copy(); Pin[:,fi]=-1
    print('LR dom C',C,summarize(cl[Pin.argmax(1)],Pin.max(1),yd))
S=Ed@E[ins].T; yi=y[ins]
for k in [1,5,20]:
    idx=np.argsort(-S,1)[:,:k]; sc=np.take_along_axis(S,idx,1).mean(1)
    print('knn',k,summarize(yi[idx[:,0]],sc,yd))
# Mahalanobis
def maha(labels, shrink):
    L=labels[ins]; cls=np.unique(L); mu=np.stack([E[ins][L==c].mean(0) for c in cls])
    R=E[ins]-mu[np.searchsorted(cls,L)]; cov=R.T@R/len(R); cov=(1-shrink)*cov+shrink*np.trace(cov)/cov.shape[0]*np.eye(cov.shape[0])
    Pm=np.linalg.inv(cov); D=Ed[:,None,:]-mu[None]; d=np.einsum('nkd,de,nke->nk',D,Pm,D)
    return cls,d
for lab,name in [(y,'dom'),(intent,'intent')]:
    for sh in [0.01,0.1,0.3]:
        cls,d=maha(lab,sh); dom=np.array([c.split('#')[0] for c in cls])
        print('maha',name,sh,summarize(dom[d.argmin(1)],-d.min(1),yd))
