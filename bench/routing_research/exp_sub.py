import sys, time, numpy as np
sys.path.insert(0,'/tmp/routing'); from common import *
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import normalize
from scipy.sparse import hstack
X,y,Xd,yd=load(); y=np.array(y)
vw=TfidfVectorizer(ngram_range=(1,2),sublinear_tf=True)
vc=TfidfVectorizer(analyzer='char_wb',ngram_range=(2,5),sublinear_tf=True,min_df=2)
A=normalize(hstack([vw.fit_transform(X),vc.fit_transform(X)]).tocsr()); Ad=normalize(hstack([vw.transform(Xd),vc.transform(Xd)]).tocsr())
# diagnostic: true intents from file order (blocks of 100)
intent=np.array([f'{y[i]}#{i//100}' if y[i]!='fallback' else 'fallback' for i in range(len(y))])
for C in [10,30]:
    clf=LogisticRegression(C=C,max_iter=3000).fit(A,intent); P=clf.predict_proba(Ad); cl=clf.classes_
    dom=np.array([c.split('#')[0] for c in cl]); fi=list(cl).index('fallback')
    Pin=P.copy(); Pin[:,fi]=-1
    pa=dom[Pin.argmax(1)]
    print('ORACLE-intent LR C',C,'maxprob',summarize(pa,Pin.max(1),yd))
    # domain-aggregated
    doms=sorted(set(dom)-{'fallback'}); Pd=np.stack([P[:,dom==d].sum(1) for d in doms],1)
    print('   domsum',summarize(np.array(doms)[Pd.argmax(1)],Pd.max(1),yd))
