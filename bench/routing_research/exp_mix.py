import sys, time, json, numpy as np
sys.path.insert(0,'/tmp/routing'); from common import *
from grid import *   # reuses splits, tfidf cache, E, Ed
from sklearn.cluster import KMeans
from scipy.sparse import vstack
def run2(cfg):
    outs=[]
    rng=np.random.default_rng(0)
    for tr,te in splits:
        A,At=tfidf(tr,te); Etr=E[tr]; Ete=Ed if te is None else E[te]; ytr=y[tr].astype(object); ins=ytr!='fallback'
        w=cfg['w']; F=hstack([A,csr_matrix(w*Etr)]).tocsr(); Ft=hstack([At,csr_matrix(w*Ete)]).tocsr()
        labels=ytr.copy()
        if cfg.get('sub'):
            for d in np.unique(ytr[ins]):
                m=ytr==d; km=KMeans(cfg['sub'],n_init=1,random_state=0).fit(Etr[m]); labels[m]=[f'{d}#{c}' for c in km.labels_]
        sw=np.where(ytr=='fallback',cfg.get('fbw',1.0),1.0)
        if cfg.get('mix'):
            ii=np.where(ins)[0]; a=rng.choice(ii,cfg['mix']); b=rng.choice(ii,cfg['mix'])
            keep=ytr[a]!=ytr[b]; a,b=a[keep],b[keep]; lam=rng.uniform(0.35,0.65,len(a))
            M=csr_matrix(F[a].multiply(lam[:,None]))+csr_matrix(F[b].multiply((1-lam)[:,None]))
            F=vstack([F,M]).tocsr(); labels=np.concatenate([labels,['fallback']*len(a)]); sw=np.concatenate([sw,np.full(len(a),cfg.get('mixw',1.0))])
        clf=LogisticRegression(C=cfg['C'],max_iter=3000).fit(F,labels.astype(str),sample_weight=sw); Z=clf.decision_function(Ft); cl=clf.classes_
        dom=np.array([c.split('#')[0] for c in cl]); fi=np.where(dom=='fallback')[0][0]
        doms=np.array(sorted(set(dom)-{'fallback'}))
        Zd=np.stack([logsumexp(Z[:,dom==d],1) for d in doms],1)
        o={'pred':doms[Zd.argmax(1)],'fblogit':Zd.max(1)-Z[:,fi],'energy':logsumexp(Zd,1),'submax':np.delete(Z,fi,1).max(1)}
        S=Ete@Etr[ins].T; S.sort(1); o['knn5']=S[:,-5:].mean(1)
        outs.append(o)
    dev=outs[0]; oof={}
    for (tr,te),o in zip(splits[1:],outs[1:]):
        for k,v in o.items(): oof.setdefault(k,np.empty(len(X),dtype=v.dtype)); oof[k][te]=v
    def z(k,src):
        m=oof[k][y!='fallback'].mean(); s=oof[k][y!='fallback'].std(); return (src[k]-m)/s
    r={}
    for name,c in [('3',['fblogit','energy','knn5']),('fb',['fblogit']),('fb+knn',['fblogit','knn5']),('fb+sub+knn',['fblogit','submax','knn5'])]:
        sd=sum(z(k,dev) for k in c); so=sum(z(k,oof) for k in c)
        r[name]=(summarize(oof['pred'],so,y)['acc_at_r90'],summarize(dev['pred'],sd,yd)['acc_at_r90'])
    r['cls']=((oof['pred']==y)[y!='fallback'].mean().round(4),(dev['pred']==yd)[yd!='fallback'].mean().round(4))
    return r
if __name__=='__main__':
    for cfg in json.loads(sys.argv[1]):
        t=time.time(); print(cfg, run2(cfg), round(time.time()-t), flush=True)
