import sys, json, numpy as np, itertools
sys.path.insert(0,'/tmp/routing'); from common import *
from sklearn.linear_model import LogisticRegression
X,y,Xd,yd=load(); y=np.array(y); yd=np.array(yd)
S=np.load(sys.argv[1],allow_pickle=True).item(); key=list(S)[0]; dev,oof=S[key]; print(key)
keys=['fblogit','energy','submax','knn1','knn5','knn20']
mu={k:oof[k][y!='fallback'].mean() for k in keys}; sd={k:oof[k][y!='fallback'].std() for k in keys}
def M(src,ks): return np.stack([(src[k]-mu[k])/sd[k] for k in ks],1)
res=[]
for r in [1,2,3,4]:
  for ks in itertools.combinations(keys,r):
    so=M(oof,ks).sum(1); sdv=M(dev,ks).sum(1)
    res.append((summarize(oof['pred'],so,y)['acc_at_r90'],summarize(dev['pred'],sdv,yd)['acc_at_r90'],'zsum '+'+'.join(ks)))
res.sort(); [print(r) for r in res[-8:]]
for C in [0.01,0.1,1]:
  for cw in [None,'balanced']:
    lr=LogisticRegression(C=C,class_weight=cw).fit(M(oof,keys),y!='fallback')
    so=lr.decision_function(M(oof,keys)); sdv=lr.decision_function(M(dev,keys))
    print('metaLR',C,cw,np.round(lr.coef_,2),'oof(in-sample)',summarize(oof['pred'],so,y)['acc_at_r90'],'dev',summarize(dev['pred'],sdv,yd))
