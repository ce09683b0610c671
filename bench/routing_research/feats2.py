"""bank of OOS scores; dev (fit on all) and OOF (5-fold on examples)"""
import sys, time, numpy as np
sys.path.insert(0,'/tmp/routing'); from common import *
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.cluster import KMeans
from sklearn.preprocessing import normalize
from scipy.sparse import hstack, csr_matrix
from scipy.special import logsumexp
X,y,Xd,yd=load(); y=np.array(y); yd=np.array(yd)
E=normalize(np.load('cache/minilm_train.npy')); Ed=normalize(np.load('cache/minilm_dev.npy'))
intent=np.array([f'{y[i]}#{i//100}' if y[i]!='fallback' else 'fallback' for i in range(len(y))])
def subclusters(Etr,ytr,k,seed=0):
    lab=np.array(ytr,dtype=object).copy()
    for d in np.unique(ytr):
        if d=='fallback': continue
        m=ytr==d; km=KMeans(k,n_init=1,random_state=seed).fit(Etr[m]); lab[m]=[f'{d}#{c}' for c in km.labels_]
    return lab.astype(str)
def maha(Etr,L,Ete,shrink=0.3):
    cls=np.unique(L); mu=np.stack([Etr[L==c].mean(0) for c in cls])
    R=Etr-mu[np.searchsorted(cls,L)]; cov=R.T@R/len(R); cov=(1-shrink)*cov+shrink*np.trace(cov)/cov.shape[0]*np.eye(cov.shape[0])
    Lc=np.linalg.cholesky(np.linalg.inv(cov)); Zt=Ete@Lc; Zm=mu@Lc
    d=(Zt**2).sum(1)[:,None]-2*Zt@Zm.T+(Zm**2).sum(1)[None]; return -d.min(1)
def scores(tr, Xte, Ete):
    Xtr=[X[i] for i in tr]; ytr=y[tr]; Etr=E[tr]; ins=ytr!='fallback'
    vw=TfidfVectorizer(ngram_range=(1,2),sublinear_tf=True); vc=TfidfVectorizer(analyzer='char_wb',ngram_range=(2,5),sublinear_tf=True,min_df=2)
    A=normalize(hstack([vw.fit_transform(Xtr),vc.fit_transform(Xtr)]).tocsr()); At=normalize(hstack([vw.transform(Xte),vc.transform(Xte)]).tocsr())
    out={}
    def lr(F,Ft,C,name,labels=ytr):
        clf=LogisticRegression(C=C,max_iter=3000).fit(F,labels); Z=clf.decision_function(Ft); cl=clf.classes_
        P=np.exp(Z-logsumexp(Z,1,keepdims=True)); fi=list(cl).index('fallback'); dom=np.array([c.split('#')[0] for c in cl])
        Pin=P.copy(); Pin[:,fi]=-1; out[name+'_pred']=dom[Pin.argmax(1)]; out[name+'_max']=Pin.max(1); out[name+'_nfb']=1-P[:,fi]
        Zin=np.delete(Z,fi,1); out[name+'_energy']=logsumexp(Zin,1); out[name+'_maxlogit']=Zin.max(1)
        out[name+'_fblogit']=-(Z[:,fi]-Zin.max(1))
    lr(A,At,30,'tf')
    for w in [0.5,1.0]:
        F=hstack([A,csr_matrix(w*Etr)]).tocsr(); Ft=hstack([At,csr_matrix(w*Ete)]).tocsr()
        lr(F,Ft,30,f'cat{w}')
    lr(Etr,Ete,10,'em')
    S=Ete@Etr[ins].T; S.sort(1); out['em_knn1']=S[:,-1]; out['em_knn5']=S[:,-5:].mean(1); out['em_knn20']=S[:,-20:].mean(1)
    out['em_maha_int']=maha(Etr[ins],intent[tr][ins],Ete)
    for k in [10,15,25]:
        L=subclusters(Etr,ytr,k); out[f'em_maha_k{k}']=maha(Etr[ins],L[ins],Ete)
    return out
t=time.time()
dev=scores(np.arange(len(X)),Xd,Ed); print('full fit+score',time.time()-t,flush=True)
np.save('cache/feats2_dev.npy',dev,allow_pickle=True)
from sklearn.model_selection import StratifiedKFold
oof={}
for tr,te in StratifiedKFold(5,shuffle=True,random_state=0).split(X,y):
    o=scores(tr,[X[i] for i in te],E[te])
    for k,v in o.items():
        oof.setdefault(k,np.empty(len(X),dtype=v.dtype)); oof[k][te]=v
np.save('cache/feats2_oof.npy',oof,allow_pickle=True)
