import sys, numpy as np
sys.path.insert(0,'/tmp/routing'); from common import *
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import normalize
from sklearn.metrics import roc_auc_score
X,y,Xd,yd=load(); y=np.array(y); yd=np.array(yd); ins=y!='fallback'
Lt=np.load('cache/layers_train.npy'); Ld=np.load('cache/layers_dev.npy')
def get(L,ls): return normalize(np.concatenate([normalize(L[:,l*384:(l+1)*384]) for l in ls],1))
def fpr_at(sc,oos,tpr=0.9):
    t=np.quantile(sc[oos],tpr); return (sc[~oos]<t).mean()
for ls in [[6],[5],[4],[3],[5,6],[4,6],[3,6],[2,4,6],[1,2,3,4,5,6]]:
    Et,Ed=get(Lt,ls),get(Ld,ls)
    clf=LogisticRegression(C=10,max_iter=2000).fit(Et[ins],y[ins]); acc=(clf.predict(Ed)==yd)[yd!='fallback'].mean()
    S=Ed@Et[ins].T; S.sort(1); k5=S[:,-5:].mean(1)
    print(ls,'lr acc',round(acc,4),'knn5 AUROC',round(roc_auc_score(yd!='fallback',k5),4),'FPR@90',round(fpr_at(k5,yd=='fallback'),4),flush=True)
