import sys, time, json, numpy as np, itertools
sys.path.insert(0,'/tmp/routing'); from common import *
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import normalize
from sklearn.model_selection import StratifiedKFold
from scipy.sparse import hstack, csr_matrix
from scipy.special import logsumexp
X,y,Xd,yd=load(); y=np.array(y); yd=np.array(yd)
E=normalize(np.load('cache/minilm_train.npy')); Ed=normalize(np.load('cache/minilm_dev.npy'))
splits=[(np.arange(len(X)),None)]+list(StratifiedKFold(5,shuffle=True,random_state=0).split(X,y))
feat_cache={}
def tfidf(tr,te,char=(2,5)):
    key=(id(tr),char)
    if key not in feat_cache:
        Xtr=[X[i] for i in tr]; Xte=Xd if te is None else [X[i] for i in te]
        vw=TfidfVectorizer(ngram_range=(1,2),sublinear_tf=True); vc=TfidfVectorizer(analyzer='char_wb',ngram_range=char,sublinear_tf=True,min_df=2)
        feat_cache[key]=(normalize(hstack([vw.fit_transform(Xtr),vc.fit_transform(Xtr)]).tocsr()),normalize(hstack([vw.transform(Xte),vc.transform(Xte)]).tocsr()))
    return feat_cache[key]
def run(cfg):
    outs=[]
    for tr,te in splits:
        A,At=tfidf(tr,te); Etr=E[tr]; Ete=Ed if te is None else E[te]; ytr=y[tr]; ins=ytr!='fallback'
        w=cfg['w']; F=hstack([A,csr_matrix(w*Etr)]).tocsr(); Ft=hstack([At,csr_matrix(w*Ete)]).tocsr()
        sw=np.where(ytr=='fallback',cfg['fbw'],1.0)
        clf=LogisticRegression(C=cfg['C'],max_iter=3000).fit(F,ytr,sample_weight=sw); Z=clf.decision_function(Ft); cl=clf.classes_
        fi=list(cl).index('fallback'); Zin=np.delete(Z,fi,1); cin=np.delete(cl,fi)
        o={'pred':cin[Zin.argmax(1)],'fblogit':Zin.max(1)-Z[:,fi],'energy':logsumexp(Zin,1)}
        S=Ete@Etr[ins].T; S.sort(1); o['knn5']=S[:,-5:].mean(1)
        outs.append(o)
    dev=outs[0]; oof={}
    for (tr,te),o in zip(splits[1:],outs[1:]):
        for k,v in o.items(): oof.setdefault(k,np.empty(len(X),dtype=v.dtype)); oof[k][te]=v
    def z(k,src):
        m=oof[k][y!='fallback'].mean(); s=oof[k][y!='fallback'].std(); return (src[k]-m)/s
    keys=['fblogit','energy','knn5']
    r={}
    for name,c in [('3',keys),('fb',['fblogit']),('fb+knn',['fblogit','knn5'])]:
        sd=sum(z(k,dev) for k in c); so=sum(z(k,oof) for k in c)
        r[name]=(summarize(oof['pred'],so,y)['acc_at_r90'],summarize(dev['pred'],sd,yd)['acc_at_r90'])
    r['cls']=((oof['pred']==y)[y!='fallback'].mean().round(4),(dev['pred']==yd)[yd!='fallback'].mean().round(4))
    return r
if __name__=="__main__":
  grid=[dict(C=C,w=w,fbw=f) for C in [30] for w in [0.3,0.5,0.7] for f in [1,3,10]]
  if len(sys.argv)>1: grid=json.loads(sys.argv[1])
  for cfg in grid:
      t=time.time(); print(cfg, run(cfg), round(time.time()-t), flush=True)
