import sys, time, json, numpy as np
sys.path.insert(0,'/tmp/routing'); from common import *
import grid as G
from grid import splits, tfidf, X, y, Xd, yd, LogisticRegression, hstack, csr_matrix, logsumexp, normalize
from sklearn.cluster import KMeans
Lt=np.load('cache/layers_train.npy'); Ld=np.load('cache/layers_dev.npy')
def get(L,ls): return normalize(np.concatenate([normalize(L[:,l*384:(l+1)*384]) for l in ls],1)).astype(np.float64)
SAVE={}
def run3(cfg):
    Eall=get(Lt,cfg['ls']); Edev=get(Ld,cfg['ls'])
    outs=[]; t0=time.time()
    for si,(tr,te) in enumerate(splits):
        A,At=tfidf(tr,te); Etr=Eall[tr]; Ete=Edev if te is None else Eall[te]; ytr=y[tr].astype(object); ins=ytr!='fallback'
        w=cfg['w']; F=hstack([A,csr_matrix(w*Etr)]).tocsr(); Ft=hstack([At,csr_matrix(w*Ete)]).tocsr()
        labels=ytr.copy()
        if cfg.get('sub'):
            for d in np.unique(ytr[ins]):
                m=ytr==d; km=KMeans(cfg['sub'],n_init=1,random_state=0).fit(Etr[m]); labels[m]=[f'{d}#{c}' for c in km.labels_]
        t=time.time()
        clf=LogisticRegression(C=cfg['C'],max_iter=3000,tol=cfg.get('tol',1e-4)).fit(F,labels.astype(str)); Z=clf.decision_function(Ft); cl=clf.classes_
        if si==0: print('  fit s',round(time.time()-t,1),'iters',clf.n_iter_,flush=True)
        dom=np.array([c.split('#')[0] for c in cl]); fi=np.where(dom=='fallback')[0][0]
        doms=np.array(sorted(set(dom)-{'fallback'}))
        Zd=np.stack([logsumexp(Z[:,dom==d],1) for d in doms],1)
        o={'pred':doms[Zd.argmax(1)],'fblogit':Zd.max(1)-Z[:,fi],'energy':logsumexp(Zd,1),'submax':np.delete(Z,fi,1).max(1)}
        S=Ete@Etr[ins].T; S.sort(1); o['knn5']=S[:,-5:].mean(1); o['knn1']=S[:,-1]; o['knn20']=S[:,-20:].mean(1)
        outs.append(o)
    dev=outs[0]; oof={}
    for (tr,te),o in zip(splits[1:],outs[1:]):
        for k,v in o.items(): oof.setdefault(k,np.empty(len(X),dtype=v.dtype)); oof[k][te]=v
    SAVE[json.dumps(cfg)]=(dev,oof)
    def z(k,src):
        m=oof[k][y!='fallback'].mean(); s=oof[k][y!='fallback'].std(); return (src[k]-m)/s
    r={}
    for name,c in [('3',['fblogit','energy','knn5']),('fb+knn',['fblogit','knn5']),('fb+sub+knn',['fblogit','submax','knn5']),('fb+sub+knn20',['fblogit','submax','knn20'])]:
        sd=sum(z(k,dev) for k in c); so=sum(z(k,oof) for k in c)
        r[name]=(summarize(oof['pred'],so,y)['acc_at_r90'],summarize(dev['pred'],sd,yd)['acc_at_r90'])
    r['cls']=((oof['pred']==y)[y!='fallback'].mean().round(4),(dev['pred']==yd)[yd!='fallback'].mean().round(4))
    return r
if __name__=='__main__':
    for cfg in json.loads(sys.argv[1]):
        t=time.time(); print(cfg, run3(cfg), round(time.time()-t), flush=True)
    if len(sys.argv)>2: np.save(sys.argv[2],SAVE,allow_pickle=True)
