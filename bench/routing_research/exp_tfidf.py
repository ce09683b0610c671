import sys, time, numpy as np
sys.path.insert(0,'/tmp/routing'); from common import *
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC
from scipy.sparse import hstack
X,y,Xd,yd=load(); y=np.array(y)
t=time.time()
vw=TfidfVectorizer(ngram_range=(1,2),sublinear_tf=True,min_df=1)
vc=TfidfVectorizer(analyzer='char_wb',ngram_range=(2,5),sublinear_tf=True,min_df=2)
A=hstack([vw.fit_transform(X),vc.fit_transform(X)]).tocsr(); Ad=hstack([vw.transform(Xd),vc.transform(Xd)]).tocsr()
from sklearn.preprocessing import normalize
A=normalize(A); Ad=normalize(Ad)
print('feat',A.shape,time.time()-t)
for C in [10,30]:
    t=time.time()
    clf=LogisticRegression(C=C,max_iter=2000).fit(A,y); P=clf.predict_proba(Ad); cl=clf.classes_
    fi=list(cl).index('fallback'); Pin=P.copy(); Pin[:,fi]=-1
    pa=cl[Pin.argmax(1)]
    print('LR C',C,time.time()-t)
    print('  maxprob',summarize(pa,Pin.max(1),yd))
    print('  1-pfb',summarize(pa,1-P[:,fi],yd))
    # cosine knn to training examples
S=(Ad@A.T).toarray()
ins=y!='fallback'
for k in [1,5]:
    Si=S[:,ins]; yi=y[ins]
    idx=np.argsort(-Si,1)[:,:k]
    sc=np.take_along_axis(Si,idx,1).mean(1)
    pa=np.array([yi[i[0]] for i in idx])
    print('knn',k,summarize(pa,sc,yd))
